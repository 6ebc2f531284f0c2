"""The router loads its models before its first batch (otherwise that batch waits about a second)."""

from __future__ import annotations

import jieba

from services.router import detection
from services.router.app import load_models
from shared import i18n
from shared.config import load_config
from shared.settings import EXAMPLE_CONFIG


def test_load_models_loads_the_language_model_jieba_and_every_catalogue(monkeypatch):
    config = load_config(EXAMPLE_CONFIG)
    # As in a fresh router process: nothing loaded yet (other tests may have loaded them in this one).
    detection._identifier.cache_clear()
    i18n._translations.cache_clear()
    # jieba's module functions are bound to its default tokenizer.
    tokenizer = jieba.lcut.__self__
    monkeypatch.setattr(tokenizer, "initialized", False)

    load_models(config)

    assert detection._identifier.cache_info().currsize == 1
    assert i18n._translations.cache_info().currsize == len(i18n.available())
    assert tokenizer.initialized
