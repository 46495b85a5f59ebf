"""turn_uclient.py again with net.io = epoll: the fallback UDP data path passes the same cases (every
daemon the file starts must log that epoll serves it)."""

import os
import runpy

os.environ["ML_TEST_NET_IO"] = "epoll"
runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "turn_uclient.py"), run_name="__main__")
