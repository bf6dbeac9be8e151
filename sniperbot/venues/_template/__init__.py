"""A venue to copy: ``cp -r sniperbot/venues/_template sniperbot/venues/<kind>`` (see README.md here)."""
