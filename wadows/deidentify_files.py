"""`wadows deidentify IN OUT`: the de-identification core on files, offline, with a progress bar and a summary.

Outputs are named by their new UIDs (OUT/<study>/<series>/<sop>.dcm): input paths often spell out patient
names, and they must not travel with the de-identified objects.
"""

from __future__ import annotations

import csv
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wadows.deid import Deidentifier, Refusal
from wadows.dicom import part10
from wadows.dicom.transcode import choose_transfer_syntax
from wadows.wado.uids import is_valid_uid

EXPLICIT_LE = "1.2.840.10008.1.2.1"


@dataclass
class Summary:
    done: int = 0
    refused: Counter = field(default_factory=Counter)  # reason -> count
    skipped_non_dicom: int = 0
    failed: Counter = field(default_factory=Counter)   # reason -> count
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"{self.done} de-identified, {sum(self.refused.values())} refused, "
               f"{sum(self.failed.values())} failed, {self.skipped_non_dicom} not DICOM, in {self.seconds:.1f} s"]
        out += [f"  refused ({n}): {reason}" for reason, n in self.refused.most_common()]
        out += [f"  failed ({n}): {reason}" for reason, n in self.failed.most_common()]
        return out


def deidentify_path(source: Path, out: Path, deidentifier: Deidentifier, show_progress: bool = True,
                    report: Path | None = None) -> Summary:
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    summary = Summary()
    started = time.perf_counter()
    rows: list[tuple[str, str, str]] = []
    from tqdm import tqdm

    with tqdm(files, unit="file", file=sys.stderr, disable=not show_progress or None) as bar:
        for path in bar:
            outcome, detail = _one(path, out, deidentifier)
            if outcome == "done":
                summary.done += 1
            elif outcome == "refused":
                summary.refused[detail] += 1
            elif outcome == "not DICOM":
                summary.skipped_non_dicom += 1
            else:
                summary.failed[detail] += 1
            rows.append((str(path), outcome, detail))
    summary.seconds = time.perf_counter() - started
    if report is not None:
        with open(report, "w", newline="") as f:
            csv.writer(f).writerows([("input", "outcome", "detail"), *rows])
    return summary


def _one(path: Path, out: Path, deidentifier: Deidentifier) -> tuple[str, str]:
    with open(path, "rb") as fp:
        if fp.read(132)[128:132] != b"DICM":
            return "not DICOM", ""
        try:
            instance = part10.open_source(fp)
            plan = deidentifier.plan(instance.dataset)
        except part10.DicomReadError as exc:
            return "failed", f"unreadable: {exc}"
        except Refusal as refusal:
            return "refused", refusal.reason
        stored = str(instance.transfer_syntax)
        target = choose_transfer_syntax(stored, [stored, EXPLICIT_LE], pixel_edit=plan.pixel_edit is not None)
        if target is None:
            return "refused", "the pixels must be cleaned and cannot be written in any transfer syntax here"
        try:
            header = deidentifier.apply(instance.dataset, plan)
        except part10.DicomReadError as exc:  # a malformed element is converted only here
            return "failed", f"unreadable: {exc}"
        # Folders by the new UIDs; an object without valid ones (damaged, or kept as they came: ".." is well formed
        # for a UI) is still placed inside `out`, never through a name it carries.
        study, series, sop = (_name(header.get(keyword, ""), f"no-{name}-uid") for keyword, name in
                              (("StudyInstanceUID", "study"), ("SeriesInstanceUID", "series"),
                               ("SOPInstanceUID", "sop-instance")))
        destination = out / study / series / f"{sop}.dcm"
        destination.parent.mkdir(parents=True, exist_ok=True)
        partial = destination.with_suffix(".partial")
        try:
            with open(partial, "wb") as f:
                for chunk in part10.encode(header, instance, target, plan.pixel_edit):
                    f.write(chunk)
            os.replace(partial, destination)
        except (part10.TranscodeError, part10.DicomReadError) as exc:  # e.g. Pixel Data its attributes do not describe
            partial.unlink(missing_ok=True)
            return "failed", str(exc)
        except BaseException:
            partial.unlink(missing_ok=True)  # never leave a half-written object behind
            raise
    return "done", ""


def _name(value, otherwise: str) -> str:
    text = str(value or "")
    return text if is_valid_uid(text) else otherwise

