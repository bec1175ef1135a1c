"""Datasets: generators/loaders and their spike-time encodings (model.md section 7)."""

from snndelay.data.yinyang import yinyang, yinyang_spikes

__all__ = ["yinyang", "yinyang_spikes"]
