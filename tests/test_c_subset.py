"""The C subset translator: what it reads, what it writes, and what it refuses."""

import ast

import pytest

from harness.translate.c_subset import Callee, Names, NotParsed, Unsupported, parse_fragment, \
    translate_block

PREDICATE = Callee(dispatched=True, takes_kvm=False, required=1, maximum=1)
WARN = Callee(dispatched=True, takes_kvm=False, required=1, maximum=2, has_message=True)


def names() -> Names:
    return Names(
        function="example",
        locals={"old_spte", "new_spte", "flush", "level", "iter", "shared", "pt"},
        objects={"iter"},
        callees={"is_accessed_spte": PREDICATE, "is_dirty_spte": PREDICATE,
                 "spte_to_pfn": PREDICATE, "kvm_set_pfn_accessed": PREDICATE,
                 "WARN_ON_ONCE": WARN,
                 "tdp_mmu_iter_set_spte": Callee(True, False, 2, 2),
                 "handle_removed_pt": Callee(True, False, 2, 2),
                 "page_count": Callee(False, True, 1, 1)},
        vm_globals=frozenset({"shadow_accessed_mask"}),
        constants=frozenset({"PG_LEVEL_4K"}))


def python(*lines: str) -> str:
    return "\n".join(ast.unparse(s) for s in translate_block(parse_fragment(list(lines)),
                                                             names()))


@pytest.mark.parametrize("c, expected", [
    (["flush = true;"], "flush = True"),
    (["flush |= is_dirty_spte(old_spte);"], "flush |= kvm.is_dirty_spte(old_spte)"),
    (["if (is_accessed_spte(old_spte) && !is_accessed_spte(new_spte))", "flush = true;"],
     "if kvm.is_accessed_spte(old_spte) and (not kvm.is_accessed_spte(new_spte)):\n"
     "    flush = True"),
    (["if (level > PG_LEVEL_4K) {", "flush = true;", "} else", "return false;"],
     "if level > PG_LEVEL_4K:\n    flush = True\nelse:\n    return False"),
    (["if (old_spte) { } else if (new_spte) return true; else { return old_spte & ~1ULL; }"],
     "if old_spte:\n    pass\nelif new_spte:\n    return True\nelse:\n    return old_spte & ~1"),
    (["return (is_dirty_spte(old_spte) && !is_dirty_spte(new_spte)) ||", "(level == 1);"],
     "return kvm.is_dirty_spte(old_spte) and (not kvm.is_dirty_spte(new_spte)) or level == 1"),
    (["if (shared || WARN_ON_ONCE(old_spte & shadow_accessed_mask))", "return;"],
     "if shared or kvm.WARN_ON_ONCE(old_spte & kvm.shadow_accessed_mask, "
     "'example: WARN_ON_ONCE(old_spte & shadow_accessed_mask)'):\n    return"),
    (["tdp_mmu_iter_set_spte(kvm, &iter, 0);"], "kvm.tdp_mmu_iter_set_spte(iter, 0)"),
    (["kvm_set_pfn_accessed(spte_to_pfn(iter.old_spte));"],
     "kvm.kvm_set_pfn_accessed(kvm.spte_to_pfn(iter.old_spte))"),
    (["handle_removed_pt(kvm, pt, shared);"], "kvm.handle_removed_pt(pt, shared)"),
    (["u64 spte = old_spte >> 12;", "bool young;", "level--;", "spte ^= 0x10;"],
     "spte = old_spte >> 12\nlevel -= 1\nspte ^= 16"),
    (["flush = page_count(level) ? unlikely(shared) : false;"],
     "flush = shared if page_count(kvm, level) else False"),
])
def test_translates(c, expected):
    assert python(*c) == expected


def test_translation_is_not_the_identity_on_operators():
    """Twin of the table: && and || are not interchangeable, nor are the two operands."""
    assert python("flush = shared && level;") != python("flush = shared || level;")
    assert python("flush = shared && level;") != python("flush = level && shared;")


@pytest.mark.parametrize("c, construct, line", [
    (["flush = true;", "goto out;"], "goto", 2),
    (["for (level = 0; level < 4; level++)", "flush = true;"], "for loop", 1),
    (["while (flush)", "flush = false;"], "while loop", 1),
    (["flush = true;", "", "flush = (bool)level;"], "cast", 3),
    (["flush = *pt;"], "pointer dereference", 1),
    (["kvm_set_pfn_dirty(old_spte);"], "call to unmodelled function 'kvm_set_pfn_dirty'", 1),
    (["flush = is_mmu_writable(unknown_local);"], "call to unmodelled function "
                                                  "'is_mmu_writable'", 1),
    (["flush = unknown_local;"], "identifier 'unknown_local'", 1),
    (["kvm_set_pfn_accessed(old_spte, level);"], "call to 'kvm_set_pfn_accessed' with 2 "
                                                 "arguments", 1),
    (["flush = level / 2;"], "operator '/'", 1),
    (["flush = is_dirty_spte(&old_spte);"], "address-of", 1),
    (["if ((flush = shared))", "return;"], "assignment inside an expression", 1),
    (["switch (level) { case 1: break; }"], "switch", 1),
    (["flush = true;", "break;"], "break", 2),
])
def test_refuses_with_construct_and_line(c, construct, line):
    with pytest.raises(Unsupported) as caught:
        python(*c)
    assert caught.value.construct == construct
    assert caught.value.line == line
    assert f"unsupported construct {construct} at line {line}" in str(caught.value)


@pytest.mark.parametrize("c, line", [
    (["if (flush)"], 2),
    (["flush = true;", "}", "flush = false;"], 1),
    (["(is_leaf || !is_present))"], 1),
])
def test_incomplete_statements_are_not_parsed(c, line):
    with pytest.raises(NotParsed) as caught:
        parse_fragment(c)
    assert caught.value.line >= 1


# -- iterator macros, kept-out calls, min/max -------------------------------------

LOOPS = {"for_each_rmap_spte": (3, 2, "for_each_rmap_spte", (0,)),
         "for_each_tdp_pte_min_level": (5, 0, "for_each_tdp_pte_min_level", (1, 2, 3, 4))}


def looping(*lines: str) -> str:
    table = names()
    table.loops = dict(LOOPS)
    table.no_effect = frozenset({"rcu_read_lock", "lockdep_assert_held_write"})
    table.locals |= {"rmap_head", "root", "start", "end"}
    block = parse_fragment(list(lines), table.loops)
    return "\n".join(ast.unparse(s) for s in translate_block(block, table))


def test_an_iterator_macro_becomes_the_models_for_loop():
    assert looping("for_each_rmap_spte(rmap_head, &iter, sptep)",
                   "    flush |= is_dirty_spte(sptep);") == (
        "for sptep in for_each_rmap_spte(kvm, rmap_head):\n"
        "    flush |= kvm.is_dirty_spte(sptep)")
    assert looping("for_each_tdp_pte_min_level(iter, root, PG_LEVEL_4K, start,",
                   "                           end) {",
                   "  if (!is_accessed_spte(iter.old_spte))", "    continue;",
                   "  if (shared) break;", "}") == (
        "for iter in for_each_tdp_pte_min_level(kvm, root, PG_LEVEL_4K, start, end):\n"
        "    if not kvm.is_accessed_spte(iter.old_spte):\n        continue\n"
        "    if shared:\n        break")


def test_kept_out_calls_are_dropped_and_min_max_are_pythons():
    assert looping("rcu_read_lock();", "lockdep_assert_held_write(&kvm->mmu_lock);",
                   "end = min(end, start + 1);") == "end = min(end, start + 1)"


@pytest.mark.parametrize("c, construct", [
    (["for_each_rmap_spte(kvm, rmap_head, &iter, sptep)", "flush = true;"],
     "loop macro 'for_each_rmap_spte' with 4 arguments"),
    (["for_each_rmap_spte(rmap_head, &iter, sptes[0])", "flush = true;"],
     "loop variable of 'for_each_rmap_spte' that is not a name"),
    (["while (flush)", "flush = false;"], "while loop"),
    (["flush = rcu_read_lock();"], "call to unmodelled function 'rcu_read_lock'"),
    (["flush = true;", "continue;"], "continue"),
])
def test_loops_outside_the_forms_are_refused(c, construct):
    with pytest.raises(Unsupported) as caught:
        looping(*c)
    assert caught.value.construct == construct


def test_an_spte_pointer_is_read_with_get_and_read_once_is_the_value():
    table = names()
    table.pointers = {"pt"}
    block = parse_fragment(["old_spte = READ_ONCE(*pt);", "flush = is_dirty_spte(*pt);"])
    assert "\n".join(ast.unparse(s) for s in translate_block(block, table)) == (
        "old_spte = pt.get()\nflush = kvm.is_dirty_spte(pt.get())")
    with pytest.raises(Unsupported, match="pointer dereference"):
        translate_block(parse_fragment(["flush = *iter;"]), table)
