def test_healthz_answers_without_a_token(anonymous):
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_create_then_read_user(scim):
    created = scim.post(
        "/Users", json={"userName": "ann@example.com", "name": {"givenName": "Ann"}}
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    fetched = scim.get(f"/Users/{user_id}")
    assert fetched.status_code == 200
    assert fetched.json()["userName"] == "ann@example.com"
    assert fetched.headers["content-type"].startswith("application/scim+json")
