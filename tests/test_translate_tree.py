"""Whole-file translation (harness.translate.tree) on small git trees of our own C.

Each construct the MMU files use gets a tree written here (never kernel text),
is translated, and the translation is run: the faithful C gives the C
answer, and a mutant of the same C gives another one, so each test can fail.
The last tests translate a real tree: Debian's linux-source-6.1, installed by
``.ci/install-linux-source``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.shared import make_tree

from harness.translate import coverage
from harness.translate.environment import EnvironmentMiss, KernelStop
from harness.translate.tree import translate_tree
from kernel_models.effects import FolioDirty, SpteWrite, TlbFlush, Warn
from kernel_models.mmu_internal import kvm_mmu_page, kvm_mmu_page_role
from kernel_models.vm import VM

ROOT = Path(__file__).resolve().parent.parent
MMU = "arch/x86/kvm/mmu/"

HEADER = """\
#ifndef OUR_SPTE_H
#define OUR_SPTE_H
#define OUR_PRESENT BIT_ULL(11)
#define OUR_WRITABLE (1ULL << 1)
#define OUR_LEVEL_SHIFT(level) (12 + ((level) - 1) * 9)
#define for_each_level(l, top) for (l = (top); l > 0; l--)
typedef u64 our_spte_t;
struct our_walk { u64 sptes[5]; int level; u64 *sptep; };
static inline bool our_present(u64 spte)
{
	return spte & OUR_PRESENT;
}
#endif
"""


def translate(tmp_path: Path, body: str, header: str = HEADER, extra: dict | None = None):
    files = {MMU + "spte.h": header,
             MMU + "mmu.c": '#include "spte.h"\n' + body}
    files.update(extra or {})
    return translate_tree(make_tree(tmp_path, files), "HEAD", cache=False)


def vm_for(state, mode: str = "ept_ad") -> VM:
    return VM(state.version_set(), mode)


def run(state, name, *args, mode="ept_ad"):
    vm = vm_for(state, mode)
    return getattr(vm, name)(*args), vm


def caller(state, name):
    """The translated ``name`` as a plain function (a fresh VM per call)."""
    return lambda *args: run(state, name, *args)[0]


def sptep(vm, value: int, level: int = 1):
    sp = kvm_mmu_page(vm, kvm_mmu_page_role(level=level), 0)
    sp.spt[0] = value
    return sp.sptep(0)


# -- macros and helpers from the tree's header --------------------------------

MACROS = """
static int level_shift(int level)
{
	return OUR_LEVEL_SHIFT(level);
}
static bool writable_present(u64 spte)
{
	return our_present(spte) && (spte & OUR_WRITABLE);
}
"""


def test_object_and_function_like_macros_and_a_static_inline_come_from_the_header(tmp_path):
    state = translate(tmp_path, MACROS)
    assert run(state, "level_shift", 2)[0] == 21
    assert run(state, "writable_present", (1 << 11) | 2)[0] is True
    assert run(state, "writable_present", 1 << 11)[0] is False
    # the header is read, not retyped: a tree whose macro differs gives another answer
    other = translate(tmp_path / "other", MACROS,
                      HEADER.replace("(12 + ((level) - 1) * 9)", "(12 + ((level) - 1) * 10)"))
    assert run(other, "level_shift", 2)[0] == 22


def test_kernel_typedefs_are_opaque_and_a_tree_typedef_is_read(tmp_path):
    state = translate(tmp_path, "static our_spte_t keep(our_spte_t s, kvm_pfn_t pfn)\n"
                                "{\n\treturn s | (pfn << 12);\n}\n")
    assert run(state, "keep", 1, 2)[0] == 0x2001


# -- control flow ----------------------------------------------------------------

GOTO = """
static int first_present(u64 *table, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		if (our_present(table[i]))
			goto found;
	}
	return -1;
found:
	return i;
}
"""


def test_goto_leaves_a_loop_for_its_label(tmp_path):
    state = translate(tmp_path, GOTO)
    fn = caller(state, "first_present")
    assert fn([0, 0, 1 << 11, 0], 4) == 2
    assert fn([0, 0, 0, 0], 4) == -1
    mutant = translate(tmp_path / "m", GOTO.replace("goto found;", "break;"))
    assert caller(mutant, "first_present")([0, 0, 1 << 11, 0], 4) == -1


SWITCH = """
static int classify(int level)
{
	int r = 0;

	switch (level) {
	case 1:
		r += 1;
		fallthrough;
	case 2:
		r += 10;
		break;
	case 3:
	case 4:
		r = 100;
		break;
	default:
		r = -1;
	}
	return r;
}
"""


def test_switch_falls_through_and_takes_default(tmp_path):
    state = translate(tmp_path, SWITCH)
    fn = caller(state, "classify")
    assert [fn(level) for level in (1, 2, 3, 4, 5)] == [11, 10, 100, 100, -1]
    mutant = translate(tmp_path / "m", SWITCH.replace("fallthrough;", "break;"))
    assert caller(mutant, "classify")(1) == 1


LOOPS = """
static int loops(int n)
{
	int i, sum = 0, level;

	for (i = 0; i < n; i++) {
		if (i == 2)
			continue;
		sum += i;
	}
	while (sum > 100)
		sum -= 100;
	do {
		sum++;
	} while (sum < 3);
	do {
		sum += 1000;
	} while (0);
	for_each_level(level, 3)
		sum += level * 10000;
	return sum;
}
"""


def test_for_while_do_loops_and_an_iterator_macro_of_the_header(tmp_path):
    state = translate(tmp_path, LOOPS)
    fn = caller(state, "loops")
    # n=5: 0+1+3+4 = 8; do-while adds 1 -> 9; do-while(0) adds 1000; levels 3,2,1 -> 60000
    assert fn(5) == 61009
    mutant = translate(tmp_path / "m", LOOPS.replace("continue;", "break;"))
    assert caller(mutant, "loops")(5) == 61003   # 0+1, then do-while to 3


# -- data ------------------------------------------------------------------------

STRUCTS = """
static int walk_level(struct our_walk *walk, u64 *table)
{
	struct our_walk local;

	local.level = 3;
	local.sptes[local.level] = (u32)~0ULL;
	walk->level = local.level + 1;
	walk->sptep = &table[2];
	*walk->sptep = local.sptes[3];
	return (int)(s8)0xff;
}
"""


def test_struct_locals_fields_through_pointers_and_casts(tmp_path):
    state = translate(tmp_path, STRUCTS)
    walk = state.version_set().state.layouts["struct our_walk"]
    assert [f[0] for f in walk] == ["sptes", "level", "sptep"]
    from harness.translate.environment import Struct
    out = Struct("struct our_walk")
    table = [0, 0, 0]
    assert caller(state, "walk_level")(out, table) == -1
    assert out.level == 4 and table[2] == 0xFFFFFFFF


SPTE_MEMORY = """
static u64 clear_writable(u64 *sptep)
{
	u64 old = READ_ONCE(*sptep);

	if (!our_present(old))
		return old;
	if (WARN_ON_ONCE(old & BIT(0)))
		return 0;
	WRITE_ONCE(*sptep, old & ~OUR_WRITABLE);
	return xchg(sptep, *sptep | GENMASK_ULL(3, 2));
}
static bool swap_if(u64 *sptep, u64 old, u64 new)
{
	return try_cmpxchg64(sptep, &old, new);
}
"""


def test_reads_and_writes_through_spte_pointers_are_effects(tmp_path):
    state = translate(tmp_path, SPTE_MEMORY)
    vm = vm_for(state)
    pointer = sptep(vm, (1 << 11) | 2)
    assert vm.clear_writable(pointer) == 1 << 11
    writes = [e for e in vm.log.events if isinstance(e, SpteWrite)]
    assert [(w.old, w.new) for w in writes] == [((1 << 11) | 2, 1 << 11),
                                                (1 << 11, (1 << 11) | 0xC)]
    assert writes[0].by == "clear_writable"
    warned = vm_for(state)
    assert warned.clear_writable(sptep(warned, (1 << 11) | 1)) == 0
    assert [type(e) for e in warned.log.events] == [Warn]
    assert vm.swap_if(pointer, 0, 5) is False and pointer.get() == (1 << 11) | 0xC
    assert vm.swap_if(pointer, (1 << 11) | 0xC, 5) is True and pointer.get() == 5


CALLEES = """
static void mark(struct kvm *kvm, u64 spte)
{
	if (spte & OUR_WRITABLE)
		kvm_set_pfn_dirty(spte >> 12);
	kvm_flush_remote_tlbs(kvm);
}
static void mark_twice(struct kvm *kvm, u64 spte)
{
	mark(kvm, spte);
	mark(kvm, spte & ~OUR_WRITABLE);
}
"""


def test_callees_are_the_trees_and_the_host_side_is_the_environments(tmp_path):
    state = translate(tmp_path, CALLEES)
    assert state.functions["mark"].takes_kvm
    _, vm = run(state, "mark_twice", (1 << 12) | 2)
    assert [type(e) for e in vm.log.events] == [FolioDirty, TlbFlush, TlbFlush]
    assert vm.log.events[0].by == "mark"
    mutant = translate(tmp_path / "m", CALLEES.replace("mark(kvm, spte & ~OUR_WRITABLE);",
                                                       "mark(kvm, spte);"))
    _, vm = run(mutant, "mark_twice", (1 << 12) | 2)
    assert [type(e) for e in vm.log.events] == [FolioDirty, TlbFlush, FolioDirty, TlbFlush]


def test_config_options_choose_the_branch_an_x86_64_host_compiles(tmp_path):
    body = ("#ifdef CONFIG_X86_64\nstatic int bits(void) { return 64; }\n"
            "#else\nstatic int bits(void) { return 32; }\n#endif\n"
            "#if IS_ENABLED(CONFIG_KVM_NO_SUCH_OPTION)\nstatic int extra(void) { return 1; }\n"
            "#endif\n")
    state = translate(tmp_path, body)
    assert caller(state, "bits")() == 64
    assert "extra" not in state.functions


def test_is_enabled_in_code_is_the_configurations_answer(tmp_path):
    body = ("static bool tracked(int n)\n{\n\treturn IS_ENABLED(CONFIG_KVM_NO_SUCH_OPTION) || n;\n}\n"
            "static int smp(void)\n{\n\treturn IS_ENABLED(CONFIG_SMP) ? 2 : 1;\n}\n")
    state = translate(tmp_path, body)
    assert (caller(state, "tracked")(0), caller(state, "tracked")(3)) == (False, True)
    assert caller(state, "smp")() == 2


TMPL = """
#if PTTYPE == 64
	#define FNAME(name) paging##64_##name
	#define PT_BITS 9
#elif PTTYPE == 32
	#define FNAME(name) paging##32_##name
	#define PT_BITS 10
#endif
static int FNAME(index_bits)(void)
{
	return PT_BITS;
}
#undef FNAME
#undef PT_BITS
"""


def test_paging_tmpl_is_instantiated_once_per_guest_mode(tmp_path):
    body = ('#define PTTYPE 64\n#include "paging_tmpl.h"\n#undef PTTYPE\n'
            '#define PTTYPE 32\n#include "paging_tmpl.h"\n#undef PTTYPE\n')
    state = translate(tmp_path, body, extra={MMU + "paging_tmpl.h": TMPL})
    assert caller(state, "paging64_index_bits")() == 9
    assert caller(state, "paging32_index_bits")() == 10
    assert state.files[MMU + "paging_tmpl.h"].defined == 2


def test_bug_stops_the_function_and_an_unknown_name_is_named(tmp_path):
    body = ("static void stop(struct kvm *kvm)\n{\n\tBUG();\n\tkvm_flush_remote_tlbs(kvm);\n}\n"
            "static int outside(void)\n{\n\treturn no_such_helper(1);\n}\n")
    state = translate(tmp_path, body)
    with pytest.raises(KernelStop):
        run(state, "stop")
    assert state.functions["outside"].unknown == ("no_such_helper",)
    with pytest.raises(EnvironmentMiss, match="no_such_helper"):
        run(state, "outside")


def test_a_construct_outside_the_translator_is_a_miss_naming_it_and_its_line(tmp_path):
    body = ("static int fine(void)\n{\n\treturn 1;\n}\n"
            "static int counter(void)\n{\n\tstatic int calls;\n\treturn calls;\n}\n")
    state = translate(tmp_path, body)
    miss = state.functions["counter"].miss
    assert miss == "static local variable at mmu.c:8"
    report = coverage.coverage(state)[0]
    assert (report.file, report.defined, report.translated) == (MMU + "mmu.c", 2, 1)
    assert report.misses == (("counter", miss),)


GNU = """
#define our_log(fmt, ...) our_printk(fmt, ##__VA_ARGS__)
static int gnu_forms(int a, int b)
{
	int x, y;

	our_log("no arguments");
	x = y = min_t(u8, a, b);
	return (a - b) ?: x + y;
}
"""


def test_gnu_forms_elvis_type_arguments_chained_assignment_and_empty_va_args(tmp_path):
    state = translate(tmp_path, GNU.replace("our_printk", "pr_info"))
    fn = caller(state, "gnu_forms")
    assert fn(5, 3) == 2          # a - b is true: it is the value
    assert fn(4, 4) == 8          # a - b is 0: x + y, both min(4, 4)
    mutant = translate(tmp_path / "m", GNU.replace("pr_info", "pr_info").replace(
        "x = y = min_t(u8, a, b);", "x = y = max_t(u8, a, b);").replace("our_printk", "pr_info"))
    assert caller(mutant, "gnu_forms")(4, 6) == -2 and caller(mutant, "gnu_forms")(6, 6) == 12


def test_an_iterator_macro_from_outside_the_tree_yields_its_cursors(tmp_path):
    body = ("static int sum_pages(struct kvm *kvm)\n{\n\tstruct kvm_mmu_page *sp;\n"
            "\tint sum = 0;\n\n\tlist_for_each_entry(sp, &kvm->arch.active_mmu_pages, link)\n"
            "\t\tsum += sp->role.level;\n\treturn sum;\n}\n")
    state = translate(tmp_path, body)
    vm = vm_for(state)
    for level in (1, 2, 4):
        vm.active_mmu_pages.append(kvm_mmu_page(vm, kvm_mmu_page_role(level=level), 0))
    assert vm.sum_pages() == 7
    vm.active_mmu_pages.pop()
    assert vm.sum_pages() == 3


# -- a real tree: Debian's linux-source-6.1 ---------------------------------------

@pytest.fixture(scope="module")
def debian_tree():
    done = subprocess.run(["bash", str(ROOT / ".ci" / "install-linux-source")],
                          capture_output=True, text=True, check=False)
    if done.returncode == 3:
        pytest.skip("Debian's linux-source-6.1 cannot be had here "
                    f"(.ci/install-linux-source: {done.stderr.strip().splitlines()[-1]})")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_real_tree_translates_at_least_nine_in_ten_functions_of_each_mmu_file(debian_tree):
    state = translate_tree(debian_tree, "debian-6.1")
    rows = {r.file: r for r in coverage.coverage(state, coverage.TARGET_FILES)}
    assert set(rows) == set(coverage.TARGET_FILES)
    for row in rows.values():
        assert row.share >= 0.9, (row.file, row.misses)
    assert all(miss and " at " in miss for row in rows.values() for _, miss in row.misses)


def test_a_real_trees_spte_helpers_run_as_models(debian_tree):
    state = translate_tree(debian_tree, "debian-6.1")
    vm = vm_for(state, "legacy")
    present = (1 << 11) | 1
    assert vm.is_shadow_present_pte(present) is True
    assert vm.is_shadow_present_pte(present & ~(1 << 11)) is False
    assert vm.spte_to_pfn((0x1234 << 12) | present) == 0x1234



# -- pinned disagreements between the translated C and the models (v6.9) -------

COUNTER = """
static void unaccount(struct kvm *kvm, struct kvm_mmu_page *sp)
{
	atomic64_dec(&kvm->arch.tdp_mmu_pages);
}
"""


def test_the_tdp_page_counter_has_no_level_in_the_c_nor_in_the_model(tmp_path):
    """v6.9 audit: handle_changed_spte differed on a zapped table page, because the
    model logged the page's level with kvm->arch.tdp_mmu_pages, a VM-wide counter
    that has none in the C (tdp_unaccount_mmu_page).  The model was fixed."""
    from kernel_models.effects import StatChange
    from kernel_models.registry import VersionSet
    state = translate(tmp_path, COUNTER)
    vm = vm_for(state)
    sp = kvm_mmu_page(vm, kvm_mmu_page_role(level=2), 0, tdp_mmu_page=True)
    vm.unaccount(sp)
    model_vm = VM(VersionSet.series_state("base"), "ept_ad")
    model_vm.tdp_unaccount_mmu_page(kvm_mmu_page(model_vm, kvm_mmu_page_role(level=2), 0))
    assert vm.log.events == model_vm.log.events == [StatChange(stat="tdp_mmu_pages", level=0,
                                                               delta=-1)]
    mutant = translate(tmp_path / "m", COUNTER.replace("atomic64_dec", "atomic64_inc"))
    vm = vm_for(mutant)
    vm.unaccount(kvm_mmu_page(vm, kvm_mmu_page_role(level=2), 0, tdp_mmu_page=True))
    assert vm.log.events != model_vm.log.events


# -- what the translator reuses between units, tree states and runs --------------

CAST_OR_SUBTRACT = """#include "spte.h"
static u64 cast_or_subtract(u64 x)
{
	return (our_t) - x;
}
"""


def test_a_parse_reused_across_trees_follows_each_trees_typedefs(tmp_path):
    """The same function text at the same line parses two ways: ``(our_t) - x`` is a cast
    of ``-x`` where our_t is a type, a subtraction where it is a constant.  Parses are
    reused across units and tree states, so the reuse must be keyed by the typedef names
    the text holds, or the second tree would run the first tree's cast."""
    as_type = translate(tmp_path / "type", CAST_OR_SUBTRACT, header="typedef u64 our_t;\n")
    as_constant = translate(tmp_path / "constant", CAST_OR_SUBTRACT,
                            header="enum { our_t = 5 };\n")
    assert run(as_type, "cast_or_subtract", 1)[0] == (1 << 64) - 1
    assert run(as_constant, "cast_or_subtract", 1)[0] == 4


def test_a_warm_cache_reads_back_the_rows_and_their_compiled_code(tmp_path, monkeypatch):
    """The disk cache keeps each state's rows and, beside them, the code objects of its
    translations (bytecode of this Python), so a warm run compiles nothing; a code file
    that does not match the rows is ignored, never run."""
    from harness.translate import tree
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KCONFORM_NO_CACHE", raising=False)
    monkeypatch.setattr(tree, "_MEMORY", {})
    monkeypatch.setattr(tree, "_CODE", {})
    sources = {MMU + "spte.h": HEADER, MMU + "mmu.c": '#include "spte.h"\n' + MACROS}
    cold = tree.translate_sources(sources, cache=True)
    answer = run(cold, "level_shift", 2)[0]
    assert answer == 21
    translated = sorted(n for n, t in cold.functions.items() if t.translated)
    assert len(translated) >= 2

    def warm():
        tree._MEMORY.clear()
        tree._CODE.clear()
        state = tree.translate_sources(sources, cache=True)
        assert list(state.functions.values()) == list(cold.functions.values())
        return state

    state = warm()
    python = state.functions["level_shift"].python
    assert ("level_shift", python) in tree._CODE        # read from disk, not compiled
    assert run(state, "level_shift", 2)[0] == answer
    # the same code objects in another order: names do not match rows, nothing is taken
    (code_file,) = (tmp_path / "cache").rglob("*.code")
    import marshal
    codes = marshal.loads(code_file.read_bytes())
    code_file.write_bytes(marshal.dumps(codes[::-1]))
    state = warm()
    assert tree._CODE == {}
    assert run(state, "level_shift", 2)[0] == answer
    code_file.write_bytes(b"not marshal data")
    assert run(warm(), "level_shift", 2)[0] == answer


def test_the_install_script_keeps_its_tree_outside_the_repository():
    script = ROOT / ".ci" / "install-linux-source"
    text = script.read_text()
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert text.startswith("#!/usr/bin/env bash\n") and "apt-get download" in text
    assert "dpkg-deb -x" in text and "linux-source-6.1/arch/x86/kvm/*" in text
    assert "/.cache}/kconform/linux-source-6.1" in text and "exit 3" in text


WARNS = """static void unrelated(void)
{
}

static int warns(struct kvm *kvm, int x)
{
	WARN_ON_ONCE(x > 3);
	if (x > 5)
		WARN_ON_ONCE(x > 3);
	WARN_ON(x < 0);
	return x;
}
"""


def _warn_events(state, x):
    _, vm = run(state, "warns", x)
    return [e for e in vm.log if isinstance(e, Warn)]


def test_a_warn_is_named_by_its_condition_not_its_line(tmp_path):
    """A patch above a WARN moves its line: the same WARN of both versions must be the same
    event, else every WARN below any hunk would read as a changed one; a WARN whose
    condition changed, or the second of two identical ones, stays apart."""
    before = translate(tmp_path / "a", WARNS)
    moved = translate(tmp_path / "b", "/* two lines\n   above */\n" + WARNS.replace(
        "static void unrelated(void)\n{\n}\n", ""))
    assert _warn_events(before, 4) == _warn_events(moved, 4)
    [event] = _warn_events(before, 4)
    assert event.what == "warns: WARN_ON_ONCE(x > 3)"
    second = [e.what for e in _warn_events(before, 6)]
    assert second == ["warns: WARN_ON_ONCE(x > 3)", "warns: WARN_ON_ONCE(x > 3) #2"]
    changed = translate(tmp_path / "c", WARNS.replace("WARN_ON(x < 0)", "WARN_ON(x < 1)"))
    assert [e.what for e in _warn_events(changed, -1)] == ["warns: WARN_ON(x < 1)"]
    assert [e.what for e in _warn_events(before, -1)] == ["warns: WARN_ON(x < 0)"]
