"""Check a dataset on disk: counts per split, image/label pairing, readable files, sizes and
label values. Every problem names the file or split; all of them are reported at once, with
the dataset's fix (``DatasetSpec.fix_hint``: re-download, or fix your own file)."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from fussbench.data.samples import REDOWNLOAD, DatasetSpec, Sample
from fussbench.errors import FussbenchError

MAX_LISTED = 10
"""How many problems an error message lists before it only counts the rest."""


def format_problems(header: str, problems: list[str]) -> str:
    """Return ``header`` and the first :data:`MAX_LISTED` problems, one per line."""
    lines = [header, *(f"  {problem}" for problem in problems[:MAX_LISTED])]
    if len(problems) > MAX_LISTED:
        lines.append(f"  ... and {len(problems) - MAX_LISTED} more")
    return "\n".join(lines)


def pair_files(
    images: dict[str, Path], labels: dict[str, Path], where: str, hint: str = REDOWNLOAD
) -> list[tuple[str, Path, Path]]:
    """Match images to labels by key (the file stem).

    Args:
        images: key -> image path.
        labels: key -> label path.
        where: what is being paired, for the error message, e.g. ``"camvid split 'train'"``.
        hint: how to fix it, the end of the error's first line.

    Returns:
        ``(key, image, label)`` for every key, sorted by key.

    Raises:
        FussbenchError: listing every image without a label and label without an image.
    """
    problems = [f"{images[key]}: image has no label" for key in sorted(images.keys() - labels)]
    problems += [f"{labels[key]}: label has no image" for key in sorted(labels.keys() - images)]
    if problems:
        header = f"{where}: {len(problems)} unpaired file(s); {hint}"
        raise FussbenchError(format_problems(header, problems))
    return [(key, images[key], labels[key]) for key in sorted(images)]


def validate_dataset(spec: DatasetSpec, root: Path, shown_as: str | None = None) -> dict[str, int]:
    """Check the dataset ``spec`` laid out under ``root``.

    Args:
        shown_as: where the files under ``root`` came from (a mirror folder, an archive's
            address); error messages name it instead of ``root``, a temporary copy.

    Returns:
        Number of samples per split, keyed like ``spec.split_counts`` (a split without an
        expected count must not be empty).

    Raises:
        FussbenchError: listing the first problems, one per line, and the count of the rest.
    """
    root = Path(root)
    problems: list[str] = []
    counts: dict[str, int] = {}
    to_check: list[Sample] = []
    for split, expected in spec.split_counts.items():
        try:
            samples = spec.samples(root, split)
        except FussbenchError as error:
            problems.append(str(error))
            continue
        counts[split] = len(samples)
        to_check += samples
        if expected is None and not samples:
            problems.append(f"split '{split}': no samples under {root}")
        elif expected is not None and len(samples) != expected:
            problems.append(
                f"split '{split}': expected {expected} samples, found {len(samples)} under {root}"
            )
    problems += check_samples(spec, to_check)
    if problems:
        if shown_as is not None:
            problems = [problem.replace(str(root), shown_as) for problem in problems]
        header = f"{spec.name} at {shown_as or root}: {len(problems)} problem(s); {spec.fix_hint}"
        raise FussbenchError(format_problems(header, problems))
    return counts


def check_samples(spec: DatasetSpec, samples: list[Sample]) -> list[str]:
    """The problem of each unsound sample (unreadable, mismatched sizes, label values that
    fit no class), one line each naming the file; empty when all are sound."""
    problems = []
    for sample in tqdm(samples, desc=f"validate {spec.name}", unit="pair", disable=None):
        problem = _check_pair(spec, sample)
        if problem is not None:
            problems.append(problem)
    return problems


def _check_pair(spec: DatasetSpec, sample: Sample) -> str | None:
    """Return the problem with one image/label pair, or ``None`` when it is sound."""
    try:
        image_size = spec.open_image(sample.image).size
    except FussbenchError as error:
        return str(error)
    if spec.raw_size is not None and image_size != spec.raw_size:
        return (
            f"{sample.image}: image is {image_size[0]}x{image_size[1]} but {spec.name} images "
            f"are {spec.raw_size[0]}x{spec.raw_size[1]} (width x height)"
        )
    if sample.label is None:
        return None
    try:
        raw = spec.read_raw_label(sample.label)
    except FussbenchError as error:
        return str(error)
    label_size = (raw.shape[1], raw.shape[0])
    if image_size != label_size:
        return (
            f"{sample.label}: label is {label_size[0]}x{label_size[1]} but its image "
            f"{sample.image.name} is {image_size[0]}x{image_size[1]} (width x height, upright)"
        )
    try:
        spec.decode_label(raw, sample.label)
    except FussbenchError as error:
        return str(error)
    return None
