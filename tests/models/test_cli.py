"""``cnnlab models`` and ``cnnlab summary`` as a user runs them."""

from __future__ import annotations

from tests.conftest import assert_clean_error, require_data, run_cli


def test_models_lists_the_registry_with_counts(tmp_path):
    proc = run_cli("models", "resnet2*", env={"CNNLAB_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert "resnet20" in proc.stdout and "269,722" in proc.stdout and "He et al. 2016" in proc.stdout
    assert "resnet110" not in proc.stdout  # filtered by the pattern


def test_models_markdown_page(tmp_path):
    page = tmp_path / "models.md"
    proc = run_cli("models", "lenet5", "--markdown", page, env={"CNNLAB_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert "| `lenet5` |" in text and "61,706" in text and "How FLOPs are counted" in text


def test_summary_prints_layers_params_and_flops():
    proc = run_cli("summary", "lenet5", "--input-shape", "32,32,1", "--num-classes", "5")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "conv1 (Conv2D)" in out and "logits (Dense)" in out
    five_classes = 61706 - (84 * 10 + 10) + (84 * 5 + 5)  # the logits layer shrinks to 84 x 5 + 5
    assert f"Trainable params:     {five_classes:,}" in out
    assert "Forward FLOPs/image:" in out


def test_summary_takes_the_shape_from_a_dataset():
    require_data("mnist", "t10k-images-idx3-ubyte.gz")
    proc = run_cli("summary", "mnist_cnn", "--dataset", "mnist")
    assert proc.returncode == 0, proc.stderr
    assert "(None, 28, 28, 1)" in proc.stdout and "1,111,946" in proc.stdout


def test_unknown_model_lists_close_names():
    assert_clean_error(run_cli("summary", "lenet6"), "unknown model", "lenet5")


def test_too_small_input_states_the_minimum():
    assert_clean_error(run_cli("summary", "resnet20", "--input-shape", "3,3,3"), "at least 4x4")


def test_non_positive_class_count():
    assert_clean_error(run_cli("summary", "softmax", "--num-classes", "0"), "num_classes", "positive")


def test_malformed_input_shape():
    assert_clean_error(run_cli("summary", "lenet5", "--input-shape", "32,32"), "--input-shape", "H,W,C")
