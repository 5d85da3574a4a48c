"""The gRPC layer and the `cdp` command line, thin over the cdpcore engine."""
