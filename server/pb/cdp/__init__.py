"""GENERATED package for the protobuf package `cdp` (see server/codegen.py)."""
