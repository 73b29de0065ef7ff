"""Create the pools and variables of airflow_settings.yaml in the local stack's metadata database."""

from __future__ import annotations

import json

from dev.stack import settings_objects


def main() -> None:
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable

    objs = settings_objects()
    for pool in objs["pools"]:
        Pool.create_or_update_pool(
            name=pool["pool_name"],
            slots=int(pool["pool_slot"]),
            description=pool.get("pool_description", ""),
            include_deferred=False,
        )
    for var in objs["variables"]:
        value = var["variable_value"]
        Variable.set(var["variable_name"], value if isinstance(value, str) else json.dumps(value))
    print(
        f"pools: {[p['pool_name'] for p in objs['pools']]}; variables: {[v['variable_name'] for v in objs['variables']]}"
    )


if __name__ == "__main__":
    main()
