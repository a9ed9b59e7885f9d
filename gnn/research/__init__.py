"""The research workbench: public fraud graphs from local files, the GADBench-style protocol, model variants.

- :mod:`gnn.research.datasets` — :class:`~gnn.research.datasets.GraphDataset` and the published graph formats
  (heterophilous-graphs ``.npz``, CARE-GNN ``.mat``, PyG / PyGOD ``.pt``);
- :mod:`gnn.research.fraud_sets` — AMLSim, S-FFSD and Bitcoin-OTC (REV2 labels, unsigned graph);
- :mod:`gnn.research.protocol` — the semi / fully supervised protocol over seeds and its table;
- :mod:`gnn.research.variants` — a GAT variant, the example of swapping the model;
- :mod:`gnn.research.tracking` — results logged to MLflow's ``research`` experiment.
"""
