"""The CNI request (pyruntime.cni.request): CNI_ARGS."""

from __future__ import annotations

from pyruntime.cni import request

# -- pure parsing ----------------------------------------------------------------------------------

def test_cni_args_parse():
    assert request.parse_cni_args("IgnoreUnknown=1;IP=10.0.0.5;MAC=02:00:00:00:00:01") == {
        "IgnoreUnknown": "1", "IP": "10.0.0.5", "MAC": "02:00:00:00:00:01"}
    assert request.parse_cni_args("") == {}
