"""What the Python ONVIF clients of the tests share: JSON lines out, failures on stderr, and
the SimpleItems of a zeep-parsed ItemList."""

import json
import sys


def emit(**fields):
    """One step, as a JSON line on stdout (the Rust test reads them)."""
    print(json.dumps(fields), flush=True)


def failer(name):
    """A function that says why on stderr, prefixed with `name`, and exits 1."""

    def fail(why):
        print(f"{name}: {why}", file=sys.stderr, flush=True)
        sys.exit(1)

    return fail


def simple_items(element):
    """SimpleItem Name -> Value of a tt:ItemList (Source, Data, Parameters) parsed by zeep."""
    if element is None:
        return {}
    return {item.Name: item.Value for item in (element.SimpleItem or [])}
