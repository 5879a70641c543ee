"""The one place cnnlab imports Keras: after :func:`cnnlab.backend.configure` has run."""

from cnnlab.backend import configure, quiet_native_stderr

configure()

with quiet_native_stderr():
    import keras  # noqa: E402  (on TensorFlow this also loads TF, whose C++ logger ignores env vars)

__all__ = ["keras"]
