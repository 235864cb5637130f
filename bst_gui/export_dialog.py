"""The challenge export dialog: label, authors and output folder, validated before anything is written.

The label is checked as you type against ``bst_core.submission.LABEL_PATTERN`` and explained in
words. On "Write package" the dialog runs the host's ``check(label)`` (every reason the challenge
would refuse the submission) and then its ``export(out_dir, label, authors)``; any problem is
listed in the dialog, which stays open, and nothing is written. Values are remembered in QSettings.
The main window's ``export`` is ``pipeline.export`` (the one workflow); tests may pass their own.

The space of every message (the label's problem, the target path, the list of problems) is kept
when it is empty, so the dialog never jumps; author cells edit on a single click; nothing is filled
in for the user (the affiliation abbreviation is written only when typed, never taken from the label).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from bst_core import submission
from bst_core.errors import BadInputError

AUTHOR_FIELDS: tuple[str, ...] = ("lastname", "firstname", "email", "affiliation", "abbreviation")
AUTHOR_TITLES: tuple[str, ...] = ("Last name", "First name", "Email", "Affiliation", "Abbreviation")
AUTHOR_TIPS: tuple[str, ...] = (
    "Needed", "Needed", "Needed: the first author is the corresponding author",
    "The institute (optional; left out of the meta file when empty)",
    "The affiliation's short name, e.g. SCUT (optional; typed here, never taken from the label)")
REQUIRED_FIELDS: tuple[str, ...] = ("lastname", "firstname", "email")
"""What every author row needs; the affiliation is optional (the package's validator does not ask
for it) and written only as typed."""
SETTINGS_GROUP = "export"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

ExportCallable = Callable[[str, str, list[dict[str, Any]] | None], Path]
CheckCallable = Callable[[str], list[str]]


def label_problem(label: str) -> str:
    """Why ``label`` is not a valid system label, in words ("" when it is valid)."""
    label = label.strip()
    if not label:
        return f"Enter the system label, e.g. {submission.LABEL_EXAMPLE}."
    if submission.is_valid_label(label):
        return ""
    parts = label.split("_")
    if len(parts) != 4:
        return (f"The label has {len(parts)} part(s) separated by '_'; it needs 4: "
                f"Lastname_Abbreviation_task1_N, e.g. {submission.LABEL_EXAMPLE}.")
    lastname, abbreviation, task, number = parts
    if not re.fullmatch(r"[A-Za-z]+", lastname):
        return f"The last name '{lastname}' may only hold letters A–Z (no accents, digits or spaces)."
    if not re.fullmatch(r"[A-Za-z0-9]+", abbreviation):
        return f"The abbreviation '{abbreviation}' may only hold letters and digits."
    if task != "task1":
        return f"The third part must be 'task1', not '{task}'."
    if number not in ("1", "2", "3", "4"):
        return f"The system number must be 1, 2, 3 or 4 (at most four systems), not '{number}'."
    return f"The label does not have the form Lastname_Abbreviation_task1_N, e.g. {submission.LABEL_EXAMPLE}."


def author_problems(rows: Sequence[dict[str, str]]) -> list[str]:
    """What is missing or malformed in the author rows (rows left fully empty are ignored)."""
    problems = []
    for n, row in enumerate(rows, start=1):
        if not any(row.get(f, "").strip() for f in AUTHOR_FIELDS):
            continue
        missing = [t.lower() for f, t in zip(AUTHOR_FIELDS, AUTHOR_TITLES, strict=True)
                   if f in REQUIRED_FIELDS and not row.get(f, "").strip()]
        if missing:
            problems.append(f"Author {n}: enter the {' and '.join(missing)}.")
        email = row.get("email", "").strip()
        if email and not _EMAIL.match(email):
            problems.append(f"Author {n}: '{email}' is not an email address (name@example.org).")
    return problems


def authors_for_yaml(rows: Sequence[dict[str, str]], label: str = "") -> list[dict[str, Any]] | None:
    """Author dicts for ``<label>.meta.yaml`` (the first is the corresponding author); None if none.

    Only what was typed is written: the affiliation holds the institute and abbreviation given (no
    affiliation when neither is); nothing is derived from ``label`` (kept for callers' symmetry).
    """
    authors = []
    for row in rows:
        if not any(row.get(f, "").strip() for f in AUTHOR_FIELDS):
            continue
        author: dict[str, Any] = {
            "lastname": row.get("lastname", "").strip(), "firstname": row.get("firstname", "").strip(),
            "email": row.get("email", "").strip(), "corresponding": not authors,
        }
        affiliation = {key: row.get(field, "").strip() for key, field in (("abbreviation", "abbreviation"),
                                                                          ("institute", "affiliation"))
                       if row.get(field, "").strip()}
        if affiliation:
            author["affiliation"] = affiliation
        authors.append(author)
    return authors or None


def _keep_space(widget: QWidget) -> None:
    """Hidden, the widget still holds its place in the layout (a message coming never moves the rest)."""
    policy = widget.sizePolicy()
    policy.setRetainSizeWhenHidden(True)
    widget.setSizePolicy(policy)


def _reserved_label(name: str, *, lines: int) -> QLabel:
    """A word-wrapped message label as tall as ``lines`` lines, empty or not (the full text in its tooltip)."""
    label = QLabel("")
    label.setObjectName(name)
    label.setWordWrap(True)
    label.setFixedHeight(lines * QFontMetrics(label.font()).lineSpacing() + 4)
    label.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
    return label


def problems_from_error(error: BaseException) -> list[str]:
    """The "- ..." lines of a write_package refusal as a list (the whole message when there are none)."""
    lines = [line[2:].strip() for line in str(error).splitlines() if line.startswith("- ")]
    return lines or [str(error)]


class ExportDialog(QDialog):
    """Ask for label, authors and folder; validate; write the challenge package.

    ``export(out_dir, label, authors)`` writes and returns the package folder, raising
    ``BadInputError`` with "- problem" lines when it refuses; ``check(label)`` lists problems
    before writing. Without ``export`` the dialog only collects :meth:`options` for the host.
    """

    def __init__(self, parent: QWidget | None = None, *, label: str = "", out_dir: str = "",
                 export: ExportCallable | None = None, check: CheckCallable | None = None,
                 settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export challenge submission")
        self.setMinimumWidth(720)
        self._export = export
        self._check = check
        self._settings = settings if settings is not None else QSettings("bst-studio", "BST Studio")
        self.written_path: Path | None = None

        remembered = self._remembered()
        self.label_edit = QLineEdit(label or remembered["label"])
        self.label_edit.setPlaceholderText(submission.LABEL_EXAMPLE)
        self.label_error = _reserved_label("error", lines=2)
        self.folder_edit = QLineEdit(out_dir or remembered["out_dir"])
        self.folder_edit.setPlaceholderText("Folder that receives task1/<label>/")
        browse = QPushButton("Browse…")
        browse.setAutoDefault(False)         # Enter in a field never opens the folder chooser
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)
        self.target_label = _reserved_label("muted", lines=2)

        self.authors = QTableWidget(0, len(AUTHOR_FIELDS))
        self.authors.setHorizontalHeaderLabels(list(AUTHOR_TITLES))
        for column, tip in enumerate(AUTHOR_TIPS):
            self.authors.horizontalHeaderItem(column).setToolTip(tip)
        self.authors.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.authors.horizontalHeader().setMinimumSectionSize(90)
        self.authors.verticalHeader().setVisible(False)
        self.authors.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        # a single click (or Tab into a cell, or typing) starts editing, as in a spreadsheet
        self.authors.setEditTriggers(QAbstractItemView.EditTrigger.CurrentChanged
                                     | QAbstractItemView.EditTrigger.SelectedClicked
                                     | QAbstractItemView.EditTrigger.AnyKeyPressed
                                     | QAbstractItemView.EditTrigger.EditKeyPressed
                                     | QAbstractItemView.EditTrigger.DoubleClicked)
        self.authors.setMinimumHeight(120)
        self.authors.setToolTip("Click a cell to type. Last name, first name and email are needed for each "
                                "author; the affiliation is written as typed (left out when empty).")
        for row in remembered["authors"] or [{}]:
            self.add_author(row)
        add = QPushButton("Add author")
        add.setAutoDefault(False)
        add.clicked.connect(lambda: self.add_author({}))
        remove = QPushButton("Remove selected")
        remove.setAutoDefault(False)
        remove.clicked.connect(self._remove_selected_authors)
        author_buttons = QHBoxLayout()
        author_buttons.addWidget(QLabel("The first author is the corresponding author."), 1)
        author_buttons.addWidget(add)
        author_buttons.addWidget(remove)

        self.problems = QListWidget()
        self.problems.setObjectName("problems")
        self.problems.setWordWrap(True)
        self.problems.setFixedHeight(110)          # its space is kept while hidden: nothing jumps
        _keep_space(self.problems)
        self.problems.setVisible(False)
        self.problems_title = QLabel("The package was not written. Fix these problems first:")
        self.problems_title.setObjectName("error")
        _keep_space(self.problems_title)
        self.problems_title.setVisible(False)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.write_button = self.buttons.addButton("Write package", QDialogButtonBox.ButtonRole.AcceptRole)
        self.write_button.setObjectName("primary")
        self.write_button.setDefault(True)
        self.buttons.accepted.connect(self.try_accept)
        self.buttons.rejected.connect(self.reject)

        form = QFormLayout()
        form.addRow("System label", self.label_edit)
        form.addRow("", self.label_error)
        form.addRow("Output folder", folder_row)
        form.addRow("", self.target_label)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("<b>Authors</b> (written to the meta file)"))
        layout.addWidget(self.authors)
        layout.addLayout(author_buttons)
        layout.addWidget(self.problems_title)
        layout.addWidget(self.problems)
        layout.addWidget(self.buttons)

        self.label_edit.textChanged.connect(self._update)
        self.folder_edit.textChanged.connect(self._update)
        self.authors.itemChanged.connect(self._update)
        self._update()

    # fields -------------------------------------------------------------------------------------

    @property
    def label(self) -> str:
        return self.label_edit.text().strip()

    @property
    def out_dir(self) -> str:
        return self.folder_edit.text().strip()

    def add_author(self, row: dict[str, str]) -> None:
        r = self.authors.rowCount()
        self.authors.insertRow(r)
        for c, name in enumerate(AUTHOR_FIELDS):
            self.authors.setItem(r, c, QTableWidgetItem(str(row.get(name, ""))))

    def author_rows(self) -> list[dict[str, str]]:
        rows = []
        for r in range(self.authors.rowCount()):
            rows.append({name: (self.authors.item(r, c).text() if self.authors.item(r, c) else "")
                         for c, name in enumerate(AUTHOR_FIELDS)})
        return rows

    def options(self) -> dict[str, Any]:
        """``{"out_dir", "label", "authors"}`` (authors as meta.yaml dicts, None when none given)."""
        return {"out_dir": self.out_dir, "label": self.label,
                "authors": authors_for_yaml(self.author_rows(), self.label)}

    def _remove_selected_authors(self) -> None:
        for r in sorted({i.row() for i in self.authors.selectedIndexes()}, reverse=True):
            self.authors.removeRow(r)
        self._update()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the submission", self.out_dir or str(Path.home()))
        if folder:
            self.folder_edit.setText(folder)

    # validation ---------------------------------------------------------------------------------

    def field_problems(self) -> list[str]:
        """What is wrong with the fields themselves (label, folder, authors), in words."""
        problems = []
        if problem := label_problem(self.label):
            problems.append(problem)
        if not self.out_dir:
            problems.append("Choose the output folder.")
        elif Path(self.out_dir).exists() and not Path(self.out_dir).is_dir():
            problems.append(f"{self.out_dir} is a file, not a folder.")
        return problems + author_problems(self.author_rows())

    def _update(self, *_: object) -> None:
        problem = label_problem(self.label) if self.label_edit.text() else ""
        self.label_error.setText(problem)
        self.label_error.setToolTip(problem)
        if self.out_dir and not label_problem(self.label):
            folder = Path(self.out_dir) / "task1" / self.label
            target = f"Writes {folder / (self.label + '.output.csv')} and {self.label}.meta.yaml beside it."
        else:
            target = "The package goes to task1/<label>/ in this folder."
        self.target_label.setText(target)
        self.target_label.setToolTip(target)
        self.write_button.setEnabled(not label_problem(self.label) and bool(self.out_dir))

    def show_problems(self, problems: Sequence[str]) -> None:
        """List ``problems`` in the dialog (an empty list hides the list)."""
        self.problems.clear()
        self.problems.addItems([f"• {p}" for p in problems])
        self.problems.setVisible(bool(problems))
        self.problems_title.setVisible(bool(problems))

    def listed_problems(self) -> list[str]:
        return [self.problems.item(i).text().removeprefix("• ") for i in range(self.problems.count())]

    # accept -------------------------------------------------------------------------------------

    def try_accept(self) -> bool:
        """Validate and (with an ``export`` callable) write; accept only when all went well."""
        problems = self.field_problems()
        if not problems and self._check is not None:
            try:
                problems = list(self._check(self.label))
            except BadInputError as exc:
                problems = problems_from_error(exc)
        if problems:
            self.show_problems(problems)
            return False
        options = self.options()
        if self._export is not None:
            try:
                self.written_path = Path(self._export(options["out_dir"], options["label"], options["authors"]))
            except BadInputError as exc:
                self.show_problems(problems_from_error(exc))
                return False
            except OSError as exc:
                self.show_problems([f"The package could not be written: {exc}"])
                return False
        self.show_problems([])
        self._remember()
        self.accept()
        return True

    # settings -----------------------------------------------------------------------------------

    def _remembered(self) -> dict[str, Any]:
        store = self._settings
        authors: list[dict[str, str]] = []
        text = store.value(f"{SETTINGS_GROUP}/authors", "")
        try:
            loaded = json.loads(text) if isinstance(text, str) and text else []
            authors = [{k: str(v) for k, v in row.items()} for row in loaded if isinstance(row, dict)]
        except ValueError:
            authors = []
        return {"label": str(store.value(f"{SETTINGS_GROUP}/label", "") or ""),
                "out_dir": str(store.value(f"{SETTINGS_GROUP}/out_dir", "") or ""), "authors": authors}

    def _remember(self) -> None:
        rows = [r for r in self.author_rows() if any(v.strip() for v in r.values())]
        self._settings.setValue(f"{SETTINGS_GROUP}/label", self.label)
        self._settings.setValue(f"{SETTINGS_GROUP}/out_dir", self.out_dir)
        self._settings.setValue(f"{SETTINGS_GROUP}/authors", json.dumps(rows, ensure_ascii=False))
        self._settings.sync()


__all__ = ["AUTHOR_FIELDS", "AUTHOR_TIPS", "AUTHOR_TITLES", "REQUIRED_FIELDS", "ExportDialog", "author_problems",
           "authors_for_yaml", "label_problem", "problems_from_error"]
