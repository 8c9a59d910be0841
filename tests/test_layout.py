"""The tree says where things are: reputation/ keeps its capabilities in sub-packages of a size
a newcomer can read, and the app labels (tables, migrations, permissions) never move."""

from __future__ import annotations

from django.apps import apps

from tests.support import REPO

TOP_LEVEL_LIMIT = 8
SUB_PACKAGE_LIMIT = 15


def python_modules(folder) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py"))


def test_reputation_holds_few_modules_at_its_top_level():
    assert len(python_modules(REPO / "reputation")) <= TOP_LEVEL_LIMIT


def test_no_sub_package_outgrows_a_readable_size():
    for app in ("reputation", "routing"):
        for init in (REPO / app).glob("*/**/__init__.py"):
            if "migrations" in init.parts:
                continue
            modules = python_modules(init.parent)
            assert len(modules) <= SUB_PACKAGE_LIMIT, (str(init.parent), modules)


def test_app_labels_and_model_modules_stay_where_migrations_expect_them():
    reputation = apps.get_app_config("reputation")
    assert reputation.label == "reputation" and apps.get_app_config("routing").label == "routing"
    for model in reputation.get_models():
        assert model.__module__.startswith("reputation.models."), model
        assert model._meta.db_table == f"reputation_{model._meta.model_name}"
