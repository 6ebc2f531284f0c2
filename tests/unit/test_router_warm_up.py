"""The router loads its models before its first batch (otherwise that batch waits about a second)."""

from __future__ import annotations

import jieba

from services.router import detection
from services.router.app import load_models
from shared import i18n
from shared.config import load_config
from shared.settings import EXAMPLE_CONFIG


def test_load_models_loads_the_language_model_jieba_and_every_catalogue():
    config = load_config(EXAMPLE_CONFIG)
    load_models(config)
    assert detection._identifier(tuple(config.languages)) is not None
    assert jieba.dt.initialized
    assert i18n._translations.cache_info().currsize >= len(i18n.available())
