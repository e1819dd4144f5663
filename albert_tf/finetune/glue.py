"""GLUE tasks in their distributed TSV formats, plus a generic TSV task.

Each task is a `TaskSpec`: the files of its splits, the columns of text_a, text_b and
the label in each, whether the file has a header, its labels (None for regression), and
its metric. `read_examples` reads one split strictly: a row with the wrong number of
columns, or a label outside the task's labels, is an error naming the file and line.
Task names are the original run_classifier's `--task_name` keys.
"""

import csv
import dataclasses
import os
import sys


class TaskDataError(ValueError):
    """A data file is missing or malformed; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class InputExample:
    """One example: guid (str), text_a (str), text_b (str or None), label (str, or None for test)."""

    guid: str
    text_a: str
    text_b: str = None
    label: str = None


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """Where a task's data is and how to read it.

    files: {split: file name}; columns: {split: (text_a, text_b or None, label or None)}
    as 0-based column indexes; header / test_header: the first line of train and dev /
    of test is a header; labels: the label
    strings in id order (None = regression); metric: the key of its main metric;
    submission: the GLUE submission file name.
    """

    name: str
    files: dict
    columns: dict
    labels: tuple
    metric: str
    submission: str
    header: bool = True  # of train and dev
    test_header: bool = True

    @property
    def is_regression(self):
        """True for a task without labels (STS-B): one float output, MSE loss."""
        return self.labels is None


def _spec(name, submission, train_dev, test, labels, metric, header=True, files=None, test_header=True):
    return TaskSpec(name=name, files=files or {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"},
                    columns={"train": train_dev, "dev": train_dev, "test": test}, labels=labels, metric=metric,
                    submission=submission, header=header, test_header=test_header)


TASKS = {
    "cola": _spec("cola", "CoLA.tsv", (3, None, 1), (1, None, None), ("0", "1"), "matthews_corrcoef", header=False),
    "sst-2": _spec("sst-2", "SST-2.tsv", (0, None, 1), (1, None, None), ("0", "1"), "accuracy"),
    "mrpc": _spec("mrpc", "MRPC.tsv", (3, 4, 0), (3, 4, None), ("0", "1"), "f1"),
    "sts-b": _spec("sts-b", "STS-B.tsv", (7, 8, 9), (7, 8, None), None, "pearson"),
    "qqp": _spec("qqp", "QQP.tsv", (3, 4, 5), (1, 2, None), ("0", "1"), "f1"),
    "mnli": _spec("mnli", "MNLI-m.tsv", (8, 9, 11), (8, 9, None), ("contradiction", "entailment", "neutral"),
                  "accuracy", files={"train": "train.tsv", "dev": "dev_matched.tsv", "test": "test_matched.tsv"}),
    "mismnli": _spec("mismnli", "MNLI-mm.tsv", (8, 9, 11), (8, 9, None), ("contradiction", "entailment", "neutral"),
                     "accuracy",
                     files={"train": "train.tsv", "dev": "dev_mismatched.tsv", "test": "test_mismatched.tsv"}),
    "qnli": _spec("qnli", "QNLI.tsv", (1, 2, 3), (1, 2, None), ("entailment", "not_entailment"), "accuracy"),
    "rte": _spec("rte", "RTE.tsv", (1, 2, 3), (1, 2, None), ("entailment", "not_entailment"), "accuracy"),
    "wnli": _spec("wnli", "WNLI.tsv", (1, 2, 3), (1, 2, None), ("0", "1"), "accuracy"),
}
# MNLI dev_matched has 16 columns with the gold label last; train has 12 (label at 11).
MNLI_DEV_LABEL = -1


def generic_tsv_task(text_a_column, text_b_column, label_column, labels, header, metric="accuracy"):
    """`--task_name=tsv`: the user's own train/dev/test.tsv with the given columns.

    labels: the label strings (None or empty = regression, metric pearson). The test
    file may omit the label column.
    """
    regression = not labels
    test_columns = (text_a_column, text_b_column, None)
    return _spec("tsv", "predictions.tsv", (text_a_column, text_b_column, label_column), test_columns,
                 None if regression else tuple(labels), "pearson" if regression else metric, header=header,
                 test_header=header)


def _read_rows(path):
    if not os.path.isfile(path):
        raise TaskDataError(f"{path}: no such file")
    csv.field_size_limit(sys.maxsize)
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as e:
        raise TaskDataError(f"{path}: not UTF-8 ({e})") from None


def read_examples(task, data_dir, split):
    """The InputExamples of a split ("train", "dev" or "test") of `task` (a TaskSpec)."""
    path = os.path.join(data_dir, task.files[split])
    rows = _read_rows(path)
    text_a_col, text_b_col, label_col = task.columns[split]
    if task.name in ("mnli", "mismnli") and split == "dev":
        label_col = MNLI_DEV_LABEL
    needed = 1 + max(c for c in (text_a_col, text_b_col, label_col if label_col != MNLI_DEV_LABEL else 0)
                     if c is not None)
    expected_width = len(rows[0]) if rows else needed
    examples = []
    for line_number, row in enumerate(rows, start=1):
        if line_number == 1 and (task.test_header if split == "test" else task.header):
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if len(row) < needed or (task.name == "tsv" and len(row) != expected_width):
            raise TaskDataError(f"{path}:{line_number}: expected {max(needed, expected_width)} tab-separated "
                                f"columns, found {len(row)}")
        label = None
        if label_col is not None:
            label = row[label_col].strip()
            if task.is_regression:
                try:
                    float(label)
                except ValueError:
                    raise TaskDataError(f"{path}:{line_number}: label {label!r} is not a number") from None
            elif label not in task.labels:
                raise TaskDataError(f"{path}:{line_number}: unknown label {label!r}; the labels of "
                                    f"{task.name} are {list(task.labels)}")
        text_b = row[text_b_col] if text_b_col is not None else None
        examples.append(InputExample(guid=f"{split}-{line_number}", text_a=row[text_a_col], text_b=text_b,
                                     label=label))
    if not examples:
        raise TaskDataError(f"{path}: holds no examples")
    return examples


def test_ids(task, data_dir):
    """The submission ids of a test file, in order: GLUE's `index` column, or the row
    number (from 0) for `--task_name=tsv`."""
    rows = _read_rows(os.path.join(data_dir, task.files["test"]))
    body = [row for row in (rows[1:] if task.test_header else rows) if row and any(cell.strip() for cell in row)]
    return [str(i) if task.name == "tsv" else row[0] for i, row in enumerate(body)]
