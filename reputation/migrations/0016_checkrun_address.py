"""CheckRun.address: a dashboard "check now" of one address; an index on Listing.closed."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("reputation", "0015_held_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="checkrun",
            name="address",
            field=models.CharField(
                blank=True,
                help_text='Only this pool address (and its HELO name), if set: a dashboard "check now". Its answers apply as a sweep\'s, but it records no list sweep.',
                max_length=255,
            ),
        ),
        migrations.AlterField(
            model_name="checkrun",
            name="trigger",
            field=models.CharField(
                choices=[
                    ("schedule", "Schedule"),
                    ("command", "check_blocklists"),
                    ("address", "Check now (one address)"),
                ],
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="listing",
            index=models.Index(fields=["closed"], name="listing_closed"),
        ),
    ]
