#!/usr/bin/env python
"""Poolwarden's command line: `python manage.py help` lists the commands."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.startup import config_errors_exit, database_errors_exit

    with config_errors_exit(), database_errors_exit():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
