"""``params.yaml``, parsed into typed, validated dataclasses.

Every knob of the pipeline lives in ``params.yaml``; a key that is unknown, missing or of
the wrong type is reported with its dotted name (``train.local_steps``) and the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from fussbench.data.registry import get_dataset
from fussbench.data.samples import DatasetSpec
from fussbench.errors import FussbenchError
from fussbench.features.config import STORES, BackboneConfig
from fussbench.features.views import PREPROCESSINGS, Preprocessing
from fussbench.model.config import PRECISIONS, CorrespondenceWeights, TrainConfig
from fussbench.rules import RULE, Check, Each, Interval, OneOf, OrNone, enforce, rule

POSITIVE = rule(Interval(int, 1))
"""Metadata of an integer field that must be >= 1."""

IMAGE_SIZE = rule(
    Check(lambda size: len(size) == 2 and min(size) >= 1, "be [height, width] in pixels, both >= 1")
)
"""Metadata of an ``image_size`` field."""


@dataclass(frozen=True)
class DownloadParams:
    """``download:``: where raw data comes from.

    Attributes:
        mirror: a local folder holding ``<dataset>/`` in the downloaded layout, used instead
            of the network when it holds the dataset. Relative to the repository root.
        cityscapes_zips: a folder holding ``leftImg8bit_trainvaltest.zip`` and
            ``gtFine_trainvaltest.zip``; null: log in to cityscapes-dataset.com with the
            environment variables ``CITYSCAPES_USERNAME`` / ``CITYSCAPES_PASSWORD``.
        cocostuff_files: a folder holding ``train2017.zip``, ``val2017.zip``,
            ``stuffthingmaps_trainval2017.zip`` and
            ``curated/{train2017,val2017}/Coco164kFull_Stuff_Coarse_7.txt``; null: download.
    """

    mirror: str | None = None
    cityscapes_zips: str | None = None
    cocostuff_files: str | None = None


@dataclass(frozen=True)
class PartitionParams:
    """``partition:``: how the training split is divided into clients (``groups``: for
    method ``groups``, the sample groups of each client, e.g. Cityscapes cities;
    ``client_lists``: for method ``lists``, one text file of sample names per client, or
    one path with ``{client}`` in it for clients 0 .. ``n_clients`` - 1;
    ``embedding_clusters``: for method ``embedding_dirichlet``, the number of k-means
    clusters of the pooled features that the Dirichlet split divides among the clients)."""

    method: str = "domain"
    n_clients: int = 0
    alpha: float = 1.0
    shares: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])
    seed: int = 0
    groups: list[list[str]] = field(default_factory=list)
    client_lists: list[str] = field(default_factory=list)
    embedding_clusters: int = field(default=10, metadata=rule(Interval(int, 2)))


@dataclass(frozen=True)
class CityscapesParams:
    """``cityscapes:``: ``image_size`` [height, width] the 1024x2048 frames and their labels
    are resized to before features are cached."""

    image_size: list[int] = field(default_factory=lambda: [160, 320], metadata=IMAGE_SIZE)


@dataclass(frozen=True)
class CocoStuffParams:
    """``cocostuff27:``: ``image_size`` [height, width] images and labels are scaled to cover
    and centre-cropped to before features are cached; ``train_list``: the training images,
    IIC's curated list ("iic") or the FUSS authors' shorter one ("fuss")."""

    image_size: list[int] = field(default_factory=lambda: [224, 224], metadata=IMAGE_SIZE)
    train_list: str = "iic"


@dataclass(frozen=True)
class FolderParams:
    """``folder:``: the ``folder`` dataset, any ``images/`` folder with or without masks.

    Attributes:
        root: the folder holding ``images/`` and ``masks/`` (relative to the repository root).
        class_names: one name per class (without masks: the number of clusters' names).
        masks: the masks folder below ``root``; null (or no such folder): unlabelled images,
            the pipeline trains and writes predictions instead of scores.
        mask_suffix: what a mask's name adds to its image's (``_mask``: ``0001_mask.png``).
        mask_mode: exact | threshold | nearest | palette (see :mod:`fussbench.data.masks`).
        label_values: the raw mask value of each class; null: ``0..C-1`` (exact mode with two
            classes: 255 is class 1 too, so 0/1 and 0/255 masks both work).
        ignore_index: the raw mask value of unlabelled pixels; null: every pixel is labelled.
        mask_threshold: threshold mode: raw values >= it are class 1.
        palette: palette mode: the [r, g, b] colour of each class.
        split_file: a text file listing the test pairs, one relative name per line; null:
            ``test_fraction`` of the pairs (a seeded draw) form the test split.
        test_fraction: share of the pairs in the test split, in (0, 1).
        image_size: [height, width] images and masks are resized to before caching.
        collapse_share: without masks, a model whose largest cluster takes more than this
            share of the pixels is flagged as collapsed.
        preview_images: without masks, images per client whose predicted masks and overlays
            a run writes.
    """

    root: str | None = None
    class_names: list[str] = field(default_factory=list)
    masks: str | None = field(
        default="masks",
        metadata=rule(
            OrNone(Check(lambda masks: bool(masks.strip("/")), "name a folder below folder.root"))
        ),
    )
    mask_suffix: str = ""
    mask_mode: str = "exact"
    label_values: list[int] | None = None
    ignore_index: int | None = None
    mask_threshold: int = 128
    palette: list[list[int]] | None = None
    split_file: str | None = None
    test_fraction: float = field(default=0.2, metadata=rule(Interval(float, 0, 1, "neither")))
    image_size: list[int] = field(default_factory=lambda: [224, 224], metadata=IMAGE_SIZE)
    collapse_share: float = field(default=0.95, metadata=rule(Interval(float, 0, 1, "right")))
    preview_images: int = field(default=4, metadata=POSITIVE)


@dataclass(frozen=True)
class FeatureParams:
    """``features:``: how backbone features are cached.

    Attributes:
        layers: EfficientNet only: "16" or "16+32" (see ``BackboneConfig``).
        pretrained: False = random weights (the control run).
        checkpoint: a local weight file used instead of the package / model hub.
        batch_size: images per forward pass.
        device: auto (a CUDA GPU when present, else the CPU) | cpu | cuda.
        precision: auto (bf16/fp16 on a GPU, fp32 on the CPU) | fp32 | bf16 | fp16.
        loader_workers: processes decoding images ahead of the backbone (0: in-process).
        preprocess: "resize" (every split at the dataset's image size) or "stego" (training
            images as five half-size crops resized to train_size, evaluation images with
            the short side at eval_size and centre-cropped square; see
            :mod:`fussbench.features.views`).
        train_size: side of each training crop under "stego".
        eval_size: side of the evaluation crop under "stego".
        store: "cache" (train and evaluate on the feature cache) or "online" (the backbone
            runs on the images during federate; see :mod:`fussbench.features.online`).
    """

    layers: str = "16+32"
    pretrained: bool = True
    checkpoint: str | None = None
    batch_size: int = field(default=16, metadata=POSITIVE)
    device: str = "auto"
    precision: str = "auto"
    loader_workers: int = field(default=0, metadata=rule(Interval(int, 0)))
    preprocess: str = field(default="resize", metadata=rule(OneOf(PREPROCESSINGS)))
    train_size: int = field(default=224, metadata=POSITIVE)
    eval_size: int = field(default=320, metadata=POSITIVE)
    store: str = field(default="cache", metadata=rule(OneOf(STORES)))


AUTO_CLUSTERS = "auto"
"""The ``model.n_clusters`` value that makes the federation estimate the number of clusters."""


@dataclass(frozen=True)
class ModelParams:
    """``model:``: head output dimension and number of clusters.

    Attributes:
        dim: head output dimension D.
        n_clusters: an integer, null (the number of classes) or ``auto``: every client
            estimates its own K from its features and the server chooses the global K
            (:mod:`fussbench.federation.cluster_count`).
        k_range: [low, high], the K that ``auto`` may choose.
    """

    dim: int = field(default=70, metadata=POSITIVE)
    n_clusters: int | str | None = field(
        default=None,
        metadata=rule(
            Check(
                lambda value: (
                    value is None
                    or value == AUTO_CLUSTERS
                    or (isinstance(value, int) and value >= 2)
                ),
                f"be an integer >= 2, null (the number of classes) or {AUTO_CLUSTERS}",
            )
        ),
    )
    k_range: list[int] = field(
        default_factory=lambda: [2, 30],
        metadata=rule(
            Check(
                lambda pair: len(pair) == 2 and 2 <= pair[0] <= pair[1],
                "be [low, high] with 2 <= low <= high",
            )
        ),
    )

    @property
    def auto(self) -> bool:
        """Whether the number of clusters is estimated (``n_clusters: auto``)."""
        return self.n_clusters == AUTO_CLUSTERS


@dataclass(frozen=True)
class CorrespondenceParams:
    """``train.corr:``: λ and shift b of the self, kNN and random pairings of L_corr."""

    lambda_self: float = 1.0
    lambda_knn: float = 0.577
    lambda_rand: float = 0.906
    shift_self: float = 0.46
    shift_knn: float = 0.20
    shift_rand: float = 0.40


@dataclass(frozen=True)
class TrainParams:
    """``train:``: local training on cached features (see TrainConfig)."""

    local_steps: int = field(default=200, metadata=POSITIVE)
    batch_size: int = field(default=8, metadata=POSITIVE)
    lr_head: float = 5.0e-4
    lr_centroids: float = 5.0e-3
    feature_samples: int = field(default=11, metadata=POSITIVE)
    knn_k: int = field(default=5, metadata=POSITIVE)
    n_negatives: int = field(default=5, metadata=rule(Interval(int, 0)))
    dropout: float = field(default=0.1, metadata=rule(Interval(float, 0, 1, "left")))
    precision: str = field(default="fp32", metadata=rule(OneOf(PRECISIONS)))
    corr: CorrespondenceParams = field(default_factory=CorrespondenceParams)


@dataclass(frozen=True)
class FederationParams:
    """``federation:``: the round structure and the aggregator's settings.

    The method-related values (``weighting``, ``mode`` and every knob) are checked against
    the method registry (:func:`fussbench.methods.check.check_methods`), which owns them;
    this module knows no method.

    Attributes:
        rounds: R, rounds of local training + aggregation.
        weighting: "samples" (weight clients by image count) or "uniform".
        mode: the aggregator's mode (its registry entry lists them; null = its default).
        min_clients: the run stops when fewer clients finish a round.
        knobs: every other key of ``federation:``: the methods' own settings, each declared
            by the registry entry of its method (``mu`` of FedProx, ...), flat in
            params.yaml (``federation.mu``).
    """

    EXTRA: ClassVar[str] = "knobs"
    """The field that collects the keys not declared here."""

    rounds: int = field(default=5, metadata=POSITIVE)
    weighting: str = "samples"
    mode: str | None = None
    min_clients: int = field(default=1, metadata=POSITIVE)
    knobs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FaultParams:
    """``faults:``: a faulty or hostile client scenario, an experiment's property (never a
    method's), off by default (:mod:`fussbench.federation.faults` states each one's math;
    the registry-side check names the valid scenarios).

    Attributes:
        scenario: ``none`` (default: every client honest) or a scenario name.
        clients: which clients misbehave: client numbers, or ``largest`` / ``smallest``
            (by training images).
        from_round: the first round (1-based) in which they misbehave.
        strength: ``poisoned_head``: the flipped update's scale (1: a sign flip).
    """

    scenario: str = "none"
    clients: list[int | str] = field(default_factory=list)
    from_round: int = field(default=1, metadata=POSITIVE)
    strength: float = field(default=1.0, metadata=rule(Interval(float, 0.0, closed="neither")))


PRIVACY_MECHANISMS = ("none", "central", "local")
"""Valid ``privacy.mechanism`` values (:mod:`fussbench.privacy`); ``none`` is the default."""


@dataclass(frozen=True)
class PrivacyParams:
    """``privacy:``: client-level differential privacy, an experiment's property (never a
    method's), off by default (:mod:`fussbench.privacy` states the math; the
    registry-side check refuses a method the mechanism cannot serve).

    Attributes:
        mechanism: ``none`` (default: nothing changes), ``central`` (the server noises the
            sum of the clipped updates; methods whose server needs only a weighted sum) or
            ``local`` (each client noises its own clipped update; any federated method).
        noise_multiplier: σ: the noise std of each block is σ times its clip norm; 0:
            clipping (and sampling) without noise, ε = ∞.
        target_epsilon: a target ε at ``delta`` over the run; set, σ is calibrated to
            spend at most it (:func:`fussbench.privacy.accounting.calibrated`) and
            ``noise_multiplier`` is ignored; null: σ is ``noise_multiplier``.
        clip_head: C_h, the L2 bound of a client's head update (every ``head.*`` array).
        clip_centroids: C_c, the L2 bound of a client's centroid update.
        delta: the δ at which ε is reported.
        sample_rate: q, each client's chance of taking part in a round (Poisson
            sampling, drawn from the run seed and the round); 1: every client.
        secure_aggregation: on the ``flower`` engine, the server learns only the
            weighted sum of the clients' updates, through Flower's SecAgg+ protocol
            (:mod:`fussbench.engines.flower.secure`); only methods whose server needs
            nothing but a weighted sum take it. In-process it changes nothing (no message
            crosses a network there), which the run says when it starts.
    """

    mechanism: str = field(default="none", metadata=rule(OneOf(PRIVACY_MECHANISMS)))
    noise_multiplier: float = field(default=1.0, metadata=rule(Interval(float, 0.0)))
    target_epsilon: float | None = field(
        default=None, metadata=rule(OrNone(Interval(float, 0.0, closed="neither")))
    )
    clip_head: float = field(default=3.0, metadata=rule(Interval(float, 0.0, closed="neither")))
    clip_centroids: float = field(
        default=4.0, metadata=rule(Interval(float, 0.0, closed="neither"))
    )
    delta: float = field(default=1.0e-5, metadata=rule(Interval(float, 0.0, 1.0, "neither")))
    sample_rate: float = field(default=1.0, metadata=rule(Interval(float, 0.0, 1.0, "right")))
    secure_aggregation: bool = field(default=False, metadata=rule(OneOf((False, True))))

    @property
    def on(self) -> bool:
        """Whether a mechanism is on."""
        return self.mechanism != "none"


@dataclass(frozen=True)
class EvaluationParams:
    """``evaluation:``: where models are scored.

    Attributes:
        split: the labelled split the global model is scored on (null: the dataset's own
            evaluation split, CamVid ``test``). Tune on ``val``, never on ``test``.
        local_max_images: each client's own metrics (every round) use at most this many
            of its training images, evenly spaced; null = all of them.
        matching: how clusters map to classes: ``hungarian`` (one-to-one, the paper's
            protocol) or ``majority`` (each cluster to its most frequent class; for
            over-clustering with ``model.n_clusters`` above the number of classes).
        crf: refine the final predictions with a dense CRF over the raw images
            (:mod:`fussbench.evaluation.crf`, needs ``pip install 'fussbench[crf]'``);
            the per-round scores stay without it.
        flip: average the final prediction of every image with that of its mirror image
            (:mod:`fussbench.evaluation.flip`, STEGO's protocol), from flipped features
            cached once by ``fussbench features --flip``; the per-round scores stay
            without it.
    """

    split: str | None = None
    local_max_images: int | None = field(default=32, metadata=rule(OrNone(Interval(int, 1))))
    matching: str = field(default="hungarian", metadata=rule(OneOf(("hungarian", "majority"))))
    crf: bool = False
    flip: bool = False


@dataclass(frozen=True)
class RuntimeParams:
    """``runtime:``: how runs use the CPU.

    Attributes:
        threads: torch and scikit-learn threads per run. Results depend on it
            (floating-point sums run in another order), so it is part of a run's identity;
            keep it fixed to compare.
        workers: seeds run side by side by ``federate --all-seeds``; results do not depend
            on it. threads × workers should not exceed the cores.
    """

    threads: int = field(default=1, metadata=POSITIVE)
    workers: int = field(default=2, metadata=POSITIVE)


@dataclass(frozen=True)
class StatsParams:
    """``stats:``: the significance tests of ``fussbench stats``.

    Attributes:
        n_resamples: bootstrap resamples of each mean-difference confidence interval.
        seed: seed of the bootstrap.
        alpha: significance level of the primary hypotheses' verdicts.
        primary_test: the pre-registered test that decides them (wilcoxon | t-test).
        primary: the pre-registered primary hypotheses, one mapping each (checked by
            :func:`fussbench.stats.primary.parse_primary`).
    """

    n_resamples: int = field(default=10_000, metadata=POSITIVE)
    seed: int = 0
    alpha: float = 0.05
    primary_test: str = "wilcoxon"
    primary: list[dict] = field(default_factory=list)


@dataclass(frozen=True)
class ConvergenceParams:
    """``convergence:``: the study of mIoU against local steps (``fussbench convergence``).

    Every (setup, method, seed, steps) runs ``rounds`` rounds of ``steps`` local steps per
    client; the run's state after round r is exactly the run of r rounds, so each run gives
    the budgets (r, steps) for r = 1..rounds.

    Attributes:
        setups, methods, seeds: what runs (methods as in ``compare``).
        local_steps: local steps per client per round, one run per value.
        rounds: rounds of every run (the longest budget is rounds × max(local_steps)).
        tolerance: the paper budget is the cheapest within this many mIoU points of the
            longest budget, for every method.
        margin: the default budget is the cheapest at which centralized and the best FedCC
            both beat the ``kmeans`` reference by at least this many mIoU points.
        out: where the runs go; reports go to ``reports_dir``/convergence.*.
    """

    setups: list[str] = field(default_factory=lambda: ["camvid_domain"])
    methods: list[str] = field(default_factory=lambda: ["local", "centralized"])
    seeds: list[int] = field(default_factory=lambda: [0])
    local_steps: list[int] = field(default_factory=lambda: [50, 200])
    rounds: int = 5
    tolerance: float = 0.5
    margin: float = 2.0
    out: str = "studies/convergence"


@dataclass(frozen=True)
class StudyParams:
    """``study:``: a resumable study (``fussbench study``): every variant × setup × method ×
    seed is one federate run, recorded in ``<reports_dir>/runs.csv`` as it finishes,
    so that a rerun on any machine does only what is missing.

    Attributes:
        name: the study's name: the report it writes (:mod:`fussbench.studies.reports`)
            and its run folders' name; null: no study.
        setups, methods, seeds: what runs (methods as in ``compare``).
        variants: variant name -> ``key=value`` params overrides that each of its runs
            gets (e.g. a fault scenario); one variant with no overrides is the plain study.
        method_overrides: method cell (one of ``methods``) -> ``key=value`` params
            overrides that every run of that method gets, in every variant (e.g. its own
            privacy mechanism); they apply after the variant's overrides and before the
            setup's, the seed's and the cell's own (aggregator, weighting, mode), which win.
        skip: ``<variant>/<method>`` cells left out (a method a variant cannot change,
            e.g. ``local`` under a fault on what clients send: it sends nothing).
        hypotheses: the study's pre-registered hypotheses, one mapping each (read by its
            report).
        reference: the method the report pairs every other method with (mean difference
            by seed, its CI and an exploratory test); null: none.
        out: where the run folders go: ``<out>/<name>/<variant>/<setup>/<method>/seed<k>``.
    """

    name: str | None = None
    setups: list[str] = field(default_factory=lambda: ["camvid_domain"])
    methods: list[str] = field(default_factory=lambda: ["local"])
    seeds: list[int] = field(
        default_factory=lambda: [0], metadata=rule(Each(Interval(int, 0), True))
    )
    variants: dict[str, list[str]] = field(default_factory=lambda: {"plain": []})
    method_overrides: dict[str, list[str]] = field(default_factory=dict)
    skip: list[str] = field(default_factory=list)
    hypotheses: list[dict] = field(default_factory=list)
    reference: str | None = None
    out: str = "studies"


@dataclass(frozen=True)
class ReportParams:
    """``report:``: the tables and figures of ``fussbench report``.

    Attributes:
        qualitative_images: evaluation images in the qualitative grid (evenly spaced).
    """

    qualitative_images: int = field(default=4, metadata=POSITIVE)


@dataclass(frozen=True)
class Params:
    """The whole of ``params.yaml``, with the chosen setup merged in.

    A *setup* (an entry of ``setups``) names a dataset and a partition, plus any other
    params that differ on it; ``setup`` picks the one the main run uses. ``dataset`` and
    the sections below are the result of merging that setup over the top-level values.
    ``engine`` says where the rounds of ``federate`` run (checked by
    :func:`fussbench.engines.check_engine`: params know no engine).
    """

    setup: str = "camvid_domain"
    dataset: str = "camvid"
    backbone: str = "effnet_lite0"
    aggregator: str = "local"
    seed: int = field(default=0, metadata=rule(Interval(int, 0)))
    engine: str = "inprocess"
    datasets: list[str] = field(
        default_factory=lambda: ["camvid"], metadata=rule(Each(Check(bool, "name"), True))
    )
    runs_on: list[str] = field(default_factory=lambda: ["camvid_domain"])
    compare: list[str] = field(
        default_factory=lambda: ["local", "centralized"],
        metadata=rule(Each(Check(bool, "name a method"), True)),
    )
    seeds: list[int] = field(
        default_factory=lambda: [0], metadata=rule(Each(Interval(int, 0), True))
    )
    reports_dir: str = "reports"
    setups: dict[str, dict] = field(
        default_factory=lambda: {"camvid_domain": {"dataset": "camvid"}}
    )
    download: DownloadParams = field(default_factory=DownloadParams)
    cityscapes: CityscapesParams = field(default_factory=CityscapesParams)
    cocostuff27: CocoStuffParams = field(default_factory=CocoStuffParams)
    folder: FolderParams = field(default_factory=FolderParams)
    partition: PartitionParams = field(default_factory=PartitionParams)
    features: FeatureParams = field(default_factory=FeatureParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    federation: FederationParams = field(default_factory=FederationParams)
    faults: FaultParams = field(default_factory=FaultParams)
    privacy: PrivacyParams = field(default_factory=PrivacyParams)
    evaluation: EvaluationParams = field(default_factory=EvaluationParams)
    runtime: RuntimeParams = field(default_factory=RuntimeParams)
    convergence: ConvergenceParams = field(default_factory=ConvergenceParams)
    study: StudyParams = field(default_factory=StudyParams)
    stats: StatsParams = field(default_factory=StatsParams)
    report: ReportParams = field(default_factory=ReportParams)

    def setups_in_use(self) -> list[str]:
        """The main run's setup, then each setup of ``runs_on`` not already listed.

        Raises:
            FussbenchError: when one of them uses a dataset missing from ``datasets`` (the
                pipeline downloads and caches only those).
        """
        in_use = list(dict.fromkeys([self.setup, *self.runs_on]))
        for setup in in_use:
            dataset = self.setups[setup].get("dataset")
            if dataset not in self.datasets:
                raise FussbenchError(
                    f"setup '{setup}' uses the dataset '{dataset}', which is not in `datasets` "
                    "(the datasets the pipeline downloads and caches); add it there"
                )
        return in_use

    def dataset_spec(self, name: str | None = None) -> DatasetSpec:
        """The dataset ``name`` (default: the setup's), built with its section of the params
        (``cityscapes:``, ``folder:``, ...).

        Raises:
            FussbenchError: for an unknown name, or invalid settings (naming the param).
        """
        name = name or self.dataset
        return get_dataset(name, dataset_settings(self).get(name))

    def backbone_config(self) -> BackboneConfig:
        """The backbone, its layers, weights and preprocessing as the features package
        wants them."""
        return BackboneConfig(
            name=self.backbone,
            layers=self.features.layers,
            pretrained=self.features.pretrained,
            checkpoint=self.features.checkpoint,
            preprocessing=Preprocessing(
                self.features.preprocess, self.features.train_size, self.features.eval_size
            ),
        )

    def train_config(self) -> TrainConfig:
        """The local-training knobs as the model package wants them."""
        values = dataclasses.asdict(self.train)
        weights = CorrespondenceWeights(**values.pop("corr"))
        return TrainConfig(weights=weights, **values)


def _check_type(value: Any, annotation: Any, key: str, source: str) -> Any:
    """Return ``value`` if it fits ``annotation`` (an int may stand for a float or str)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        kept = [option for option in options if option is not type(None)]
        # with several types (`int | str`) the first one the value is; else the first
        fits = [option for option in kept if type(value) is option]
        annotation = (fits or kept)[0]
        origin = typing.get_origin(annotation)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise FussbenchError(f"{source}: {key} must be a mapping, got {value!r}")
        return value
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, list):
            raise FussbenchError(f"{source}: {key} must be a list, got {value!r}")
        return [_check_type(item, item_type, f"{key}[{i}]", source) for i, item in enumerate(value)]
    if annotation in (float, str) and isinstance(value, int) and not isinstance(value, bool):
        return annotation(value)  # YAML reads `layers: 16` as an int
    if annotation is int and isinstance(value, bool):
        raise FussbenchError(f"{source}: {key} must be an integer, got {value!r}")
    if not isinstance(value, annotation):
        raise FussbenchError(
            f"{source}: {key} must be of type {annotation.__name__}, got {value!r}"
        )
    return value


def _build(cls: type, values: Any, prefix: str, source: str) -> Any:
    """Instantiate dataclass ``cls`` from a mapping, recursing into nested dataclasses."""
    if not isinstance(values, dict):
        raise FussbenchError(f"{source}: {prefix or 'the file'} must be a mapping of keys")
    hints = typing.get_type_hints(cls)
    names = {item.name for item in dataclasses.fields(cls)}
    extra = getattr(cls, "EXTRA", None)
    unknown = sorted(set(values) - names)
    if unknown and extra is None:
        raise FussbenchError(
            f"{source}: unknown key '{prefix}{unknown[0]}'; valid keys here: "
            + ", ".join(sorted(names))
        )
    kwargs: dict[str, Any] = {}
    if extra is not None:  # the keys not declared here, as one mapping (checked elsewhere)
        names.discard(extra)
        kwargs[extra] = {key: value for key, value in values.items() if key not in names}
        values = {key: value for key, value in values.items() if key in names}
    for name, value in values.items():
        annotation = hints[name]
        if dataclasses.is_dataclass(annotation):
            kwargs[name] = _build(annotation, value, f"{prefix}{name}.", source)
        else:
            kwargs[name] = _check_type(value, annotation, prefix + name, source)
    return cls(**kwargs)


DATASET_SECTIONS = ("cityscapes", "cocostuff27", "folder")
"""Top-level sections that configure a dataset (see :func:`dataset_settings`)."""


def dataset_settings(params: Params) -> dict[str, dict[str, Any]]:
    """The constructor arguments of the configurable datasets, by dataset name."""
    folder = params.folder
    return {
        "cityscapes": {"image_size": tuple(params.cityscapes.image_size)},
        "cocostuff27": {
            "image_size": tuple(params.cocostuff27.image_size),
            "train_list": params.cocostuff27.train_list,
        },
        "folder": {
            "class_names": tuple(folder.class_names),
            "label_values": folder.label_values,
            "ignore_index": folder.ignore_index,
            "image_size": tuple(folder.image_size),
            "mask_mode": folder.mask_mode,
            "mask_threshold": folder.mask_threshold,
            "palette": folder.palette,
        },
    }


def _check_rules(section: Any, prefix: str, source: str) -> None:
    """Check every field of dataclass ``section`` against the rule in its metadata,
    recursing into nested sections.

    Raises:
        FussbenchError: the first broken rule, naming the dotted key and the bad value.
    """
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if RULE in item.metadata:
            enforce(value, item.metadata[RULE], prefix + item.name, source)
        if dataclasses.is_dataclass(value):
            _check_rules(value, f"{prefix}{item.name}.", source)


def params_mapping(params: Params) -> dict[str, Any]:
    """``params`` as the nested mapping params.yaml would hold (the federation knobs flat
    under ``federation:`` again), which :func:`parse_params` turns back into equal params."""
    values = dataclasses.asdict(params)
    values["federation"].update(values["federation"].pop(FederationParams.EXTRA))
    return values


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged in, recursively for nested mappings."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _with_setup(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Merge the chosen setup's values over the top level."""
    setups = values.get("setups", Params().setups)
    if not isinstance(setups, dict):
        raise FussbenchError(f"{source}: setups must be a mapping of setup names")
    name = values.get("setup", Params.setup)
    for wanted, key in [(name, "setup"), *((run, "runs_on") for run in values.get("runs_on", []))]:
        if wanted not in setups:
            raise FussbenchError(
                f"{source}: {key} names unknown setup '{wanted}'; defined in setups: "
                + ", ".join(setups)
            )
    chosen = setups[name]
    if not isinstance(chosen, dict) or {"setup", "setups"} & set(chosen):
        raise FussbenchError(f"{source}: setups.{name} must be a mapping of params to change")
    for setup, changes in setups.items():
        shared = sorted(set(DATASET_SECTIONS) & set(changes if isinstance(changes, dict) else {}))
        if shared:
            raise FussbenchError(
                f"{source}: setups.{setup} sets '{shared[0]}', a dataset's section; download "
                "and features run per dataset for every setup, so set it at the top level"
            )
    return _merge(values, chosen)


def parse_params(values: Any, source: str = "params", overrides: list[str] | None = None) -> Params:
    """Build validated :class:`Params` from a mapping (as loaded from YAML).

    ``overrides`` (``key=value``) apply before the setup is chosen and again after it is
    merged in, so an explicit override always wins over the setup's own values.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise FussbenchError(f"{source}: must be a mapping of keys")
    if "dataset" in values:
        raise FussbenchError(
            f"{source}: top-level 'dataset' is not a param; each setup names its dataset "
            "(setups.<name>.dataset) and `setup` picks the setup"
        )
    overrides = overrides or []
    merged = _with_setup(apply_overrides(values, overrides), source)
    params = _build(Params, apply_overrides(merged, overrides), "", source)
    _check_rules(params, "", source)
    _check_method_overrides(params.study, source)
    return params


def _check_method_overrides(study: StudyParams, source: str) -> None:
    """Every key of ``study.method_overrides`` is a method of the study and each of its
    overrides is ``key=value``.

    Raises:
        FussbenchError: naming the method cell or the override, and the fix.
    """
    for method, overrides in study.method_overrides.items():
        if method not in study.methods:
            raise FussbenchError(
                f"{source}: study.method_overrides names '{method}', which is not in "
                f"study.methods ({', '.join(study.methods)}); add it there or drop its entry"
            )
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise FussbenchError(
                f"{source}: study.method_overrides.{method} must be a list of key=value "
                f"overrides, e.g. [privacy.mechanism=central], got {overrides!r}"
            )
        try:
            apply_overrides({}, overrides)
        except FussbenchError as error:
            raise FussbenchError(f"{source}: study.method_overrides.{method}: {error}") from error


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a params mapping.

    Raises:
        FussbenchError: for an override without ``=``, or whose value is not valid YAML.
    """
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise FussbenchError(f"override '{override}' must look like key.sub=value")
        *parents, leaf = key.strip().split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise FussbenchError(f"override '{override}': '{part}' is not a section")
        try:
            node[leaf] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or "not valid YAML"
            raise FussbenchError(
                f"override '{override}': the value is not valid YAML ({problem}); quote a "
                "list or mapping for the shell, e.g. -S 'compare=[local,fedavg]'"
            ) from error
    return values


def load_params(path: Path | str = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read and validate ``params.yaml``, with optional ``key=value`` overrides on top.

    Raises:
        FussbenchError: naming the file and the offending key.
    """
    path = Path(path)
    if not path.is_file():
        raise FussbenchError(f"{path}: params file not found; run from the repository root")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise FussbenchError(f"{path}: not valid YAML ({error})") from error
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise FussbenchError(f"{path}: must be a mapping of keys")
    return parse_params(values, str(path), overrides)
