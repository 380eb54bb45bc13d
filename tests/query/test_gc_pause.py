import gc
import threading

from trajscope.query.gc_pause import gc_paused


def test_collection_resumes_only_when_the_last_user_ends():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer use is still running
    assert gc.isenabled()


def test_an_exception_still_resumes_collection():
    try:
        with gc_paused():
            raise ValueError("boom")
    except ValueError:
        pass
    assert gc.isenabled()


def test_concurrent_users_from_threads():
    inside = threading.Barrier(3)
    leave = threading.Event()

    def user():
        with gc_paused():
            inside.wait()
            leave.wait(5)

    threads = [threading.Thread(target=user) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    assert not gc.isenabled()
    leave.set()
    for t in threads:
        t.join()
    assert gc.isenabled()
