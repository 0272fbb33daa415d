"""DRE: domain representations (per-relation head/tail ellipsoids) over PyKEEN embedding models.

Wang et al., "Domain Representation for Knowledge Graph Embedding", NLPCC 2019 (arXiv 1903.10716).
"""
