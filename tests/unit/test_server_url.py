import pytest
from batch_image_processing.utils.comfy.server_url import base_url, connectable_host


@pytest.mark.parametrize(
    ("listen", "host"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "127.0.0.1"),
        ("0.0.0.0,::", "127.0.0.1"),
        ("::", "[::1]"),
        ("::,0.0.0.0", "[::1]"),
        ("::1", "[::1]"),
        ("[::1]", "[::1]"),
        ("fe80:0:0::1", "[fe80::1]"),
        ("192.168.1.20", "192.168.1.20"),
        ("localhost", "localhost"),
        ("", "127.0.0.1"),
    ],
)
def test_connectable_host(listen: str, host: str) -> None:
    assert connectable_host(listen) == host


def test_base_url_scheme_and_port() -> None:
    assert base_url("0.0.0.0", 8288, tls=False) == "http://127.0.0.1:8288"
    assert base_url("::", 443, tls=True) == "https://[::1]:443"
    with pytest.raises(ValueError, match="not a valid TCP port"):
        base_url("127.0.0.1", 0, tls=False)
