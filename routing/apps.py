from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        import config.celery  # noqa: F401 - tasks sent from any process use Poolwarden's app
        from routing import access

        post_migrate.connect(access.grant_group_permissions, dispatch_uid="pw-groups")
