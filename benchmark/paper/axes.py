"""The axes of the LfF paper's experiments, written down once. Torch-free.

Grids, the report, the paper's values and the datasets read these; nothing else spells them out.
"""

from __future__ import annotations

TABLES = tuple(range(1, 11))
# Beyond the paper: the Table 2/3 protocol on Colored MNIST for the paper's baselines and the
# methods that came after it. Report-only table number, written as table_extended.*.
EXTENDED_TABLE = 11
REPORT_TABLES = (*TABLES, EXTENDED_TABLE)
RATIOS = (95.0, 98.0, 99.0, 99.5)  # percent of bias-aligned training samples
DIFFICULTIES = (1, 2, 3, 4)  # of the bias attribute; the main tables use 4
MAIN_RATIO = 99.0  # Tables 1, 4, 8 and 9
MAIN_DIFFICULTY = 4
DEFAULT_SEEDS = (0, 1, 2)

CONTROLLED = ("cmnist", "ccifar1", "ccifar2")
# (target, bias) of the malignant direction; the benign direction is the reverse (Table 1, Figure 2).
MALIGNANT = {"cmnist": ("digit", "color"), "ccifar1": ("object", "corruption"), "ccifar2": ("object", "corruption")}
CELEBA_TARGETS = ("Blond_Hair", "Heavy_Makeup")
CELEBA_BIAS = "Male"
BAR_CLASSES = ("climbing", "diving", "fishing", "racing", "throwing", "vaulting")  # Table 6 order
BAR_CLASS_ALIASES = {"pole vaulting": "vaulting", "pole_vaulting": "vaulting"}

BASELINES = ("vanilla", "lff", "hex", "repair", "group_dro")  # Tables 2, 3, 8, 9
REPAIR_VARIANTS = ("T", "R", "C", "S")  # all four run; tables show the best (LfF Appendix D)
PAPER_METHODS = ("vanilla", "lff_ce", "lff", "lff_rubi", "hex", "repair", "group_dro", "rebias")
# The methods of the extended comparison beyond the paper's (each one module in methods/).
EXTENDED_METHODS = (
    "jtt",
    "learned_mixin",
    "group_reweight",
    "group_resample",
    "hard_example",
    "spectral_decoupling",
    "dann",
    "and_mask",
    "balanced_batches",
    "smote",
    "occamnets",
    "adversarial",
    # The LfF family (docs/successors/): each selected on the test set in its own paper, never here.
    "disent",
    "lff_be",
    "pgd",
    "lc",
    "selecmix",
    "selecmix_lff",
)
# The supervision of the paper's methods, for stores that predate the stored supervision column.
PAPER_SUPERVISION = {
    "vanilla": "none",
    "lff": "none",
    "lff_ce": "none",
    "lff_rubi": "none",
    "hex": "bias-tailored",
    "rebias": "bias-tailored",
    "repair": "bias-labels",
    "group_dro": "bias-labels",
}

METHOD_LABELS = {
    "vanilla": "Vanilla",
    "lff": "LfF",
    "lff_ce": "LfF-CE",
    "lff_rubi": "LfF-RUBi",
    "hex": "HEX",
    "repair": "REPAIR",
    "group_dro": "Group DRO",
    "rebias": "ReBias",
}
DATASET_LABELS = {
    "cmnist": "Colored MNIST",
    "ccifar1": "Corrupted CIFAR-10¹",
    "ccifar2": "Corrupted CIFAR-10²",
    "celeba": "CelebA",
    "bar": "BAR",
}
DATASET_LATEX = {"ccifar1": r"Corrupted CIFAR-10$^1$", "ccifar2": r"Corrupted CIFAR-10$^2$"}
CELEBA_LABELS = {"Blond_Hair": "HairColor", "Heavy_Makeup": "HeavyMakeup", "Male": "Gender"}
METRIC_LABELS = {
    "unbiased": "Unbiased",
    "conflicting": "Bias-conflicting",
    "accuracy": "Accuracy",
    "count": "Count",
    "relative_drop": "Relative drop",
}


def ratio_row(ratio: float) -> str:
    """A ratio as the paper's tables address rows ("99.5")."""
    return f"{float(ratio):.1f}"


def difficulty_row(difficulty: int) -> str:
    """A difficulty as the paper's tables address rows ("4")."""
    return str(int(difficulty))


def table_stem(number: int) -> str:
    """The file name stem of a table in a report folder (table2, ..., table_extended)."""
    return "table_extended" if number == EXTENDED_TABLE else f"table{number}"


def table_label(number: int) -> str:
    """How captions and headings name a table ("Table 2", "Extended table")."""
    return "Extended table" if number == EXTENDED_TABLE else f"Table {number}"
