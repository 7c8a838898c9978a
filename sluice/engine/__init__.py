"""The server's loops: admission, dispatcher, worker gateway, timers, tied by `Node`."""
