from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_delete, post_migrate, post_save


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        import config.celery  # noqa: F401 - tasks sent from any process use Poolwarden's app
        from routing import access
        from routing.checks import pool_addresses_on_host

        checks.register(pool_addresses_on_host, checks.Tags.database)
        post_migrate.connect(access.grant_group_permissions, dispatch_uid="pw-groups")
        for model in (
            "RoutingPolicy",
            "Pool",
            "IPRange",
            "PoolAddress",
            "ApiToken",
            "SenderLimit",
        ):
            post_save.connect(
                _policy_changed, sender=f"routing.{model}", dispatch_uid=f"pw-policy-{model}"
            )
            post_delete.connect(
                _policy_changed, sender=f"routing.{model}", dispatch_uid=f"pw-policy-d-{model}"
            )


def _policy_changed(**kwargs) -> None:
    # This process routes with the change (and checks tokens) at once; other processes
    # within POOLWARDEN_POLICY_REFRESH seconds.
    from routing import engine

    engine.invalidate_policy()
