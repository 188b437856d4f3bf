# mpt-proxy: ordinary TCP connections carried over libmpt (issue 12; not yet written).
