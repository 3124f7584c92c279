import os

from polyneuron.plan.library import put_library_first


def test_the_checkout_s_library_goes_first_once():
    environ = {"PYTHONPATH": os.pathsep.join(["/other", "/clone/workflow", ""])}
    put_library_first("/clone/workflow", environ)
    assert environ["PYTHONPATH"] == os.pathsep.join(["/clone/workflow", "/other"])
    put_library_first("/clone/workflow", environ)
    assert environ["PYTHONPATH"] == os.pathsep.join(["/clone/workflow", "/other"])


def test_an_unset_pythonpath_gets_only_the_library():
    environ: dict[str, str] = {}
    put_library_first("/clone/workflow", environ)
    assert environ == {"PYTHONPATH": "/clone/workflow"}
