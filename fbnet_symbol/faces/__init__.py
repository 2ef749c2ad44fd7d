"""Face recognition beyond reading: writing InsightFace's files and ``.bin`` pair sets, synthetic faces, and InsightFace's verification protocol (CLI and the per-epoch evaluation)."""
