"""Model backends and their resolution. Heavy imports (torch, transformers) stay lazy."""

from ftguard.models.base import (
                                 Backend,
                                 GenerateRequest,
                                 Generation,
                                 LoglikelihoodRequest,
                                 LoglikelihoodResult,
                                 RollingRequest,
                                 RollingResult,
)
from ftguard.models.embedded import EMBEDDED_NAME, embedded_model_dir
from ftguard.models.load import LoadOptions, load_backend

__all__ = ["EMBEDDED_NAME", "Backend", "GenerateRequest", "Generation", "LoadOptions", "LoglikelihoodRequest",
           "LoglikelihoodResult", "RollingRequest", "RollingResult", "embedded_model_dir",
           "load_backend"]
