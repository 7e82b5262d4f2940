"""Developer tools behind `faceqa dev`: tiny random VLM checkpoints, synthetic labelled datasets, free ports.

They exist so that tests, benchmarks and the tiny CPU recipe run offline. No production module imports this
package (a test checks it); what serving needs (chat templates, checkpoint saving) lives in `faceqa.vlm`.
"""
