# mpt-stream: timestamped message streams and their latency (issue 12; not yet written).
