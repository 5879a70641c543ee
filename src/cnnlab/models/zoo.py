"""Imports every module that registers builders; the registry imports this on first use."""

from cnnlab.models import airbench, applications, densenet, fastnet, inception, mobilenet, reference, resnet, vgg  # noqa: F401
