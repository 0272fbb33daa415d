"""Knowledge graphs for inductive relation prediction: the GraIL split reader and a synthetic family KG.

Inductive setting (GraIL, Teru et al. 2020, Sec. 4; CoMPILE, Mai et al. 2021, Sec. "Experiments"): a
model is trained on a *training graph* and tested on an *inductive graph* whose entities are all unseen;
only the relation vocabulary is shared. The GraIL layout on disk is::

    NAME_vK/{train,valid,test}.txt        training graph (train.txt) and its validation targets
    NAME_vK_ind/{train,valid,test}.txt    inductive graph: train.txt is the support graph used at test
                                          time, test.txt holds the query triples

with one tab-separated ``head relation tail`` triple per line.

The embedded default is a family knowledge graph generated from logical rules (parents, inverse
child relations, marriage and its inverse, siblings, grandparents, uncles/aunts), drawn twice with
disjoint entities so that rules learned on one graph carry over to the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reprolab.core.errors import DataError
from reprolab.core.readers import read_text_utf8

__all__ = [
    "FAMILY_RELATIONS",
    "FAMILY_INVERSE_PAIRS",
    "InductiveSplit",
    "KnowledgeGraph",
    "family_inductive_split",
    "load_grail_split",
    "read_triples",
    "write_grail_split",
]


@dataclass
class KnowledgeGraph:
    """A directed multi-relational graph ``(head, relation, tail)`` over entity ids ``0..num_entities-1``.

    ``triples`` is an ``E x 3`` int64 array. Out-edges are indexed by head (``out_ptr``/``out_order``) for
    the vectorised subgraph extraction in :mod:`reprolab.compile_kg.subgraph`.
    """

    triples: np.ndarray
    num_entities: int
    num_relations: int
    _known: set[tuple[int, int, int]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.triples = np.asarray(self.triples, dtype=np.int64).reshape(-1, 3)
        if len(self.triples) and (self.triples[:, [0, 2]].max() >= self.num_entities or self.triples.min() < 0):
            raise ValueError("triples refer to entity ids outside 0..num_entities-1")
        if len(self.triples) and self.triples[:, 1].max() >= self.num_relations:
            raise ValueError("triples refer to relation ids outside 0..num_relations-1")
        order = np.argsort(self.triples[:, 0], kind="stable")
        counts = np.bincount(self.triples[:, 0], minlength=self.num_entities)
        self.out_order = order
        self.out_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    @property
    def heads(self) -> np.ndarray:
        return self.triples[:, 0]

    @property
    def relations(self) -> np.ndarray:
        return self.triples[:, 1]

    @property
    def tails(self) -> np.ndarray:
        return self.triples[:, 2]

    def known(self) -> set[tuple[int, int, int]]:
        """The set of triples, for filtering sampled negatives."""
        if self._known is None:
            self._known = {tuple(int(v) for v in row) for row in self.triples}
        return self._known


@dataclass
class InductiveSplit:
    """Training graph + targets, and the inductive graph (unseen entities) + its targets.

    Entity ids of the two graphs are separate number spaces; relation ids are shared.
    """

    name: str
    relation_names: list[str]
    train_graph: KnowledgeGraph
    train_targets: np.ndarray  # triples used as training positives (GraIL: the training graph itself)
    valid_targets: np.ndarray
    ind_graph: KnowledgeGraph  # the support graph at test time
    ind_valid: np.ndarray
    ind_test: np.ndarray
    train_entity_names: list[str] = field(default_factory=list)
    ind_entity_names: list[str] = field(default_factory=list)

    @property
    def num_relations(self) -> int:
        return len(self.relation_names)

    def ind_all_true(self) -> set[tuple[int, int, int]]:
        """Every known true triple of the inductive graph (support + valid + test), for filtered ranking."""
        rows = np.concatenate([self.ind_graph.triples, self.ind_valid, self.ind_test])
        return {tuple(int(v) for v in row) for row in rows}

    def summary(self) -> dict[str, int]:
        return {
            "relations": self.num_relations,
            "train_entities": self.train_graph.num_entities,
            "train_graph_triples": len(self.train_graph.triples),
            "valid_targets": len(self.valid_targets),
            "ind_entities": self.ind_graph.num_entities,
            "ind_support_triples": len(self.ind_graph.triples),
            "ind_test_triples": len(self.ind_test),
        }


# ---------------------------------------------------------------------------------------------------
# The GraIL split reader
# ---------------------------------------------------------------------------------------------------


def read_triples(
    path: str | Path,
    entities: dict[str, int],
    relations: dict[str, int],
    *,
    new_relations: bool,
) -> np.ndarray:
    """Read tab-separated ``head relation tail`` lines into an ``E x 3`` id array.

    New entity names are added to ``entities``. A relation absent from ``relations`` is added when
    ``new_relations`` is true, and refused otherwise (the inductive graph shares the training graph's
    relations), with a :class:`DataError` naming file and line. Blank lines are skipped.
    """
    path = Path(path)
    rows: list[tuple[int, int, int]] = []
    if not path.is_file():
        raise DataError(f"{path}: file not found (GraIL layout needs train.txt, valid.txt, test.txt)")
    text = read_text_utf8(path, what="triple file")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if len(fields) != 3 or not all(fields):
            raise DataError(
                f"{path}:{number}: expected 3 tab-separated fields 'head<TAB>relation<TAB>tail', "
                f"got {len(fields)}: {line[:80]!r}"
            )
        head, relation, tail = fields
        if relation not in relations:
            if not new_relations:
                raise DataError(
                    f"{path}:{number}: relation {relation!r} does not occur in the training graph; "
                    "the inductive graph may only use the training graph's relations"
                )
            relations[relation] = len(relations)
        for name in (head, tail):
            if name not in entities:
                entities[name] = len(entities)
        rows.append((entities[head], relations[relation], entities[tail]))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def load_grail_split(root: str | Path, name: str) -> InductiveSplit:
    """Read ``root/name/`` (training graph) and ``root/name_ind/`` (inductive graph) in the GraIL layout.

    The relation vocabulary comes from the training graph's three files; the inductive graph's files may
    only use those relations. Entities of the two graphs are numbered separately.
    """
    root = Path(root)
    train_dir, ind_dir = root / name, root / f"{name}_ind"
    for folder in (train_dir, ind_dir):
        if not folder.is_dir():
            raise DataError(f"{folder}: folder not found; expected the GraIL layout NAME_vK/ and NAME_vK_ind/")
    relations: dict[str, int] = {}
    train_entities: dict[str, int] = {}
    train = read_triples(train_dir / "train.txt", train_entities, relations, new_relations=True)
    valid = read_triples(train_dir / "valid.txt", train_entities, relations, new_relations=True)
    read_triples(train_dir / "test.txt", train_entities, relations, new_relations=True)
    ind_entities: dict[str, int] = {}
    support = read_triples(ind_dir / "train.txt", ind_entities, relations, new_relations=False)
    ind_valid = read_triples(ind_dir / "valid.txt", ind_entities, relations, new_relations=False)
    ind_test = read_triples(ind_dir / "test.txt", ind_entities, relations, new_relations=False)
    if len(train) == 0 or len(support) == 0 or len(ind_test) == 0:
        raise DataError(f"{root}: {name} has an empty train.txt, _ind/train.txt or _ind/test.txt")
    num_relations = len(relations)
    return InductiveSplit(
        name=name,
        relation_names=list(relations),
        train_graph=KnowledgeGraph(train, len(train_entities), num_relations),
        train_targets=train,
        valid_targets=valid,
        ind_graph=KnowledgeGraph(support, len(ind_entities), num_relations),
        ind_valid=ind_valid,
        ind_test=ind_test,
        train_entity_names=list(train_entities),
        ind_entity_names=list(ind_entities),
    )


def write_grail_split(split: InductiveSplit, root: str | Path) -> Path:
    """Write ``split`` in the GraIL layout under ``root`` (``name/`` and ``name_ind/``); return root."""
    root = Path(root)
    relation = split.relation_names

    def dump(path: Path, triples: np.ndarray, names: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [f"{names[h]}\t{relation[r]}\t{names[t]}\n" for h, r, t in triples.tolist()]
        path.write_text("".join(lines), encoding="utf-8")

    train_names = split.train_entity_names or [f"e{i}" for i in range(split.train_graph.num_entities)]
    ind_names = split.ind_entity_names or [f"u{i}" for i in range(split.ind_graph.num_entities)]
    dump(root / split.name / "train.txt", split.train_graph.triples, train_names)
    dump(root / split.name / "valid.txt", split.valid_targets, train_names)
    dump(root / split.name / "test.txt", split.valid_targets[:0], train_names)
    dump(root / f"{split.name}_ind" / "train.txt", split.ind_graph.triples, ind_names)
    dump(root / f"{split.name}_ind" / "valid.txt", split.ind_valid, ind_names)
    dump(root / f"{split.name}_ind" / "test.txt", split.ind_test, ind_names)
    return root


# ---------------------------------------------------------------------------------------------------
# The embedded default: a family KG generated by rules
# ---------------------------------------------------------------------------------------------------

FAMILY_RELATIONS = [
    "father_of", "mother_of",  # parent -> child (asymmetric)
    "son_of", "daughter_of",  # child -> parent (the inverses of the two above)
    "husband_of", "wife_of",  # an asymmetric relation and its inverse
    "brother_of", "sister_of",  # sibling, by the subject's gender
    "grandfather_of", "grandmother_of",  # composition: parent o parent
    "uncle_of", "aunt_of",  # composition: sibling o parent
]
FAMILY_INVERSE_PAIRS = [("father_of", "son_of"), ("husband_of", "wife_of")]
_REL = {name: i for i, name in enumerate(FAMILY_RELATIONS)}


def _family_triples(
    num_families: int, rng: np.random.Generator, cross_marriage: float = 0.5
) -> tuple[np.ndarray, int]:
    """Three-generation families; every relation follows from the parent/marriage facts by rules.

    A fraction ``cross_marriage`` of the second generation marries into another family, which joins the
    families into one connected graph (so sampled negatives are not trivially far from the target).
    """
    gender: list[int] = []  # 0 male, 1 female
    parents: dict[int, tuple[int, int]] = {}
    couples: list[tuple[int, int]] = []

    def person(g: int) -> int:
        gender.append(g)
        return len(gender) - 1

    def children_of(father: int, mother: int, count: int) -> list[int]:
        kids = [person(int(rng.integers(2))) for _ in range(count)]
        for kid in kids:
            parents[kid] = (father, mother)
        return kids

    second_generation: list[tuple[int, int]] = []  # (person, family)
    for family in range(num_families):
        grandpa, grandma = person(0), person(1)
        couples.append((grandpa, grandma))
        for child in children_of(grandpa, grandma, int(rng.integers(2, 4))):
            second_generation.append((child, family))
    spouse_of: dict[int, int] = {}
    order = rng.permutation(len(second_generation))
    for index in order.tolist():
        child, family = second_generation[index]
        if child in spouse_of:
            continue
        spouse = -1
        if rng.random() < cross_marriage:  # marry into another family: links the families' trees
            for other, other_family in (second_generation[i] for i in order.tolist()):
                if other_family != family and other not in spouse_of and gender[other] != gender[child]:
                    spouse = other
                    break
        if spouse < 0:
            spouse = person(1 - gender[child])
        spouse_of[child], spouse_of[spouse] = spouse, child
        husband, wife = (child, spouse) if gender[child] == 0 else (spouse, child)
        couples.append((husband, wife))
        children_of(husband, wife, int(rng.integers(1, 4)))

    facts: set[tuple[int, int, int]] = set()
    for husband, wife in couples:
        facts.add((husband, _REL["husband_of"], wife))
        facts.add((wife, _REL["wife_of"], husband))
    for child, (father, mother) in parents.items():
        facts.add((father, _REL["father_of"], child))
        facts.add((mother, _REL["mother_of"], child))
        child_rel = _REL["son_of"] if gender[child] == 0 else _REL["daughter_of"]
        facts.add((child, child_rel, father))
        facts.add((child, child_rel, mother))
    siblings: dict[tuple[int, int], list[int]] = {}
    for child, pair in parents.items():
        siblings.setdefault(pair, []).append(child)
    for kids in siblings.values():
        for a in kids:
            for b in kids:
                if a != b:
                    facts.add((a, _REL["brother_of"] if gender[a] == 0 else _REL["sister_of"], b))
    for child, (father, mother) in parents.items():
        for parent in (father, mother):
            if parent in parents:
                for grand in parents[parent]:
                    rel = _REL["grandfather_of"] if gender[grand] == 0 else _REL["grandmother_of"]
                    facts.add((grand, rel, child))
            for kids in siblings.values():
                if parent in kids:
                    for sib in kids:
                        if sib != parent:
                            facts.add((sib, _REL["uncle_of"] if gender[sib] == 0 else _REL["aunt_of"], child))
    return np.asarray(sorted(facts), dtype=np.int64), len(gender)


def _hold_out(triples: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split off ``fraction`` of the triples as targets; the rest stay in the graph."""
    order = rng.permutation(len(triples))
    cut = max(1, int(round(fraction * len(triples))))
    return triples[np.sort(order[cut:])], triples[np.sort(order[:cut])]


def family_inductive_split(
    *, train_families: int = 24, ind_families: int = 12, held_out: float = 0.1, missing: float = 0.0,
    seed: int = 0,
) -> InductiveSplit:
    """The embedded default: two family KGs with disjoint people, split as GraIL splits its benchmarks.

    The training graph keeps ``1 - held_out`` of its triples as the graph and ``held_out`` as validation
    targets; the inductive graph keeps ``1 - 2 held_out`` as its support graph and ``held_out`` each as
    validation and test targets (removed from the support graph). A further fraction ``missing`` of the
    remaining facts of both graphs is deleted at random, as real KGs are incomplete: the rules then have
    exceptions in the observed graph.
    """
    if train_families < 1 or ind_families < 1 or not 0.0 < held_out < 0.4 or not 0.0 <= missing < 0.9:
        raise ValueError("need train_families >= 1, ind_families >= 1, 0 < held_out < 0.4, 0 <= missing < 0.9")
    rng = np.random.default_rng(seed)
    train_all, n_train = _family_triples(train_families, rng)
    ind_all, n_ind = _family_triples(ind_families, rng)
    train_graph, valid = _hold_out(train_all, held_out, rng)
    rest, ind_test = _hold_out(ind_all, held_out, rng)
    support, ind_valid = _hold_out(rest, held_out / (1.0 - held_out), rng)
    if missing > 0:
        train_graph = _hold_out(train_graph, missing, rng)[0]
        support = _hold_out(support, missing, rng)[0]
    num_rel = len(FAMILY_RELATIONS)
    return InductiveSplit(
        name="family",
        relation_names=list(FAMILY_RELATIONS),
        train_graph=KnowledgeGraph(train_graph, n_train, num_rel),
        train_targets=train_graph,
        valid_targets=valid,
        ind_graph=KnowledgeGraph(support, n_ind, num_rel),
        ind_valid=ind_valid,
        ind_test=ind_test,
        train_entity_names=[f"p{i}" for i in range(n_train)],
        ind_entity_names=[f"q{i}" for i in range(n_ind)],
    )
