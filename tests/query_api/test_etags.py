from query_api.etags import make_etag, matches


def test_etag_is_deterministic_and_sensitive():
    assert make_etag("epochs", 1, (2, 3)) == make_etag("epochs", 1, (2, 3))
    assert make_etag("epochs", 1, (2, 3)) != make_etag("epochs", 1, (2, 4))
    assert make_etag("x").startswith('"') and make_etag("x").endswith('"')


def test_if_none_match_forms():
    tag = make_etag("a")
    assert matches(tag, tag)
    assert matches(f'"other", W/{tag}', tag)
    assert matches("*", tag)
    assert not matches('"other"', tag)
    assert not matches(None, tag)
