"""GENERATED modules for the protobuf package `cdp.v1` (see server/codegen.py)."""
