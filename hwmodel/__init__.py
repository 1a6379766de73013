"""Accelerator cost model in the spirit of Timeloop/Accelergy.

Specs (``spec``) become explicit hardware objects (``arch``); component energies come from
built-in estimators or an Accelergy ERT (``energy``); workloads (``workload``) are mapped
(``mapper``) and evaluated (``model``) level by level; ``estimate`` prices whole networks.
"""
