#!/usr/bin/env python3
"""Writes the hand-made fuzz seeds into fuzz/seeds/<target>/.

The seed files are committed; this script documents where each came from and lets them
be rebuilt. Inputs that fuzzing found are written here too, minimized, as found_*. Run from anywhere: python3 fuzz/seeds/make_seeds.py
"""

import base64
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def b64(data: bytes, pad: bool = False) -> str:
    text = base64.urlsafe_b64encode(data).decode()
    return text if pad else text.rstrip("=")


HEADER = b64(b'{"alg":"HS256","typ":"JWT"}')
SIG = "c2lnbmF0dXJlLW5vdC1jaGVja2Vk"


def token(payload, pad: bool = False) -> str:
    if isinstance(payload, str):
        payload = payload.encode()
    return f"{HEADER}.{b64(payload, pad)}.{SIG}"


def write(target: str, name: str, data) -> None:
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(HERE, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def jwt_seeds() -> None:
    t = "jwt_payload"
    valid = '{"sub":"u1","sid":"s1","exp":1767225600,"iat":1767222000}'
    write(t, "valid", token(valid))
    write(t, "valid_padded", token('{"sub":"p"}', pad=True))
    write(t, "valid_userid_number", token('{"userId":42,"id":"x"}'))
    write(t, "valid_user_id_fallback", token('{"sub":null,"user_id":"u2","sessionId":"s"}'))
    write(t, "valid_id_only", token('{"id":"u3"}'))
    write(t, "valid_escaped_unicode", token('{"sub":"\\u00e9l\\u00e8ve","sid":"\\ud83d\\ude00"}'))
    write(t, "valid_raw_utf8_sub", token('{"sub":"élève"}'))
    write(t, "valid_no_claims", token("{}"))
    write(t, "valid_whitespace_in_payload", token(' \n{ "sub" : "w" }\t'))
    write(t, "two_segments", f"{HEADER}.{b64(valid.encode())}")
    write(t, "four_segments", token(valid) + ".extra")
    write(t, "one_segment", HEADER)
    write(t, "empty_segments", "..")
    write(t, "empty_payload", f"{HEADER}..{SIG}")
    write(t, "non_json_payload", token("hello, not json"))
    write(t, "payload_array", token("[1,2]"))
    write(t, "payload_array_of_claims", token('["u1","s1",1767225600]'))
    write(t, "payload_string", token('"sub"'))
    write(t, "payload_truncated_json", token('{"sub":"u1","exp":17'))
    write(t, "payload_bom", token(b'\xef\xbb\xbf{"sub":"bom"}'))
    write(t, "payload_formfeed", token(b'\x0c{"sub":"ff"}'))
    write(t, "exp_string", token('{"sub":"u","exp":"1767225600"}'))
    write(t, "exp_float", token('{"sub":"u","exp":1767225600.5}'))
    write(t, "exp_huge", token('{"sub":"u","exp":1e300}'))
    write(t, "exp_out_of_range", token('{"sub":"u","exp":1e400}'))
    write(t, "exp_u64_max", token('{"sub":"u","exp":18446744073709551615}'))
    write(t, "exp_beyond_u64", token('{"sub":"u","exp":18446744073709551616}'))
    write(t, "exp_negative", token('{"sub":"u","exp":-5}'))
    write(t, "exp_negative_zero", token('{"sub":"u","exp":-0}'))
    write(t, "exp_null", token('{"sub":"u","exp":null}'))
    write(t, "exp_object", token('{"sub":"u","exp":{"s":1}}'))
    write(t, "sub_number", token('{"sub":12345}'))
    write(t, "sub_negative", token('{"sub":-7}'))
    write(t, "sub_float", token('{"sub":1.5}'))
    write(t, "sub_float_integral", token('{"sub":2.0}'))
    write(t, "sub_u64_max", token('{"sub":18446744073709551615}'))
    write(t, "sub_null", token('{"sub":null}'))
    write(t, "sub_object", token('{"sub":{"id":"nested"},"userId":"u"}'))
    write(t, "sub_array", token('{"sub":["a"],"id":"b"}'))
    write(t, "sub_bool", token('{"sub":true}'))
    write(t, "sub_empty", token('{"sub":"","userId":"fallback"}'))
    write(t, "every_id_claim", token('{"id":"4","user_id":"3","userId":"2","sub":"1","sessionId":"t","sid":"s"}'))
    write(t, "duplicate_sub", token('{"sub":"a","sub":"b"}'))
    write(t, "duplicate_escaped_sub", token('{"s\\u0075b":"a","sub":"b"}'))
    write(t, "deep_nesting", token('{"x":' + "[" * 200 + "]" * 200 + ',"sub":"d"}'))
    write(t, "bearer_prefix", "Bearer " + token(valid))
    write(t, "leading_space", " " + token(valid))
    write(t, "trailing_newline", token(valid) + "\n")
    write(t, "tab_inside", token(valid).replace(".", ".\t", 1))
    write(t, "empty", b"")
    write(t, "only_spaces", "   ")
    write(t, "only_dots", ".")
    standard = base64.b64encode(b'{"sub":"??>"}').decode()
    write(t, "standard_base64_alphabet", f"{HEADER}.{standard}.{SIG}")
    write(t, "padding_wrong_count", f"{HEADER}.e30===.{SIG}")
    write(t, "padding_in_middle", f"{HEADER}.e3=0.{SIG}")
    write(t, "trailing_bits", f"{HEADER}.e31.{SIG}")
    write(t, "non_utf8", b"\xff\xfe" + token(valid).encode() + b"\xc3\x28")
    write(t, "non_utf8_payload", token(b'{"sub":"\xff\xfe"}'))
    write(t, "message_words", "JWT has at byte 3")
    write(t, "too_long_64k_payload", token('{"sub":"big","pad":"' + "A" * 65536 + '"}'))
    write(t, "near_limit", token('{"sub":"n","pad":"' + "B" * 11800 + '"}'))
    # Raw JSON: the entry point also wraps its input as a payload.
    write(t, "raw_claims", valid)
    write(t, "raw_claims_64k", '{"sub":"big","pad":"' + "C" * 65536 + '"}')
    write(t, "raw_claims_duplicate", '{"exp":1,"exp":2}')
    # Found by fuzzing: bytes the decoder skips unread (an ignored claim) may be invalid
    # UTF-8 or an unpaired surrogate escape; the token is still read.
    write(t, "found_invalid_utf8_in_ignored_claim", token(b'{"sub":"n","pad":"@\x90\x90\x92"}'))
    write(t, "found_unpaired_surrogate_in_ignored_claim", token('{"sub":"n","pad":"\\ud800"}'))
    write(t, "found_deep_ignored_claim", token('{"sub":"n","pad":' + "[" * 200 + "]" * 200 + "}"))


def responses_seeds() -> None:
    t = "controller_responses"
    jwt = token('{"sub":"u1","exp":1767225600}')
    ts = "2026-01-01T00:00:00.000Z"
    user = {"id": "u1", "username": "ana", "email": "ana@example.com"}
    full_user = dict(user, firstName="Ana", lastName="Lima", roles=["admin", "viewer"])
    shapes = {
        # the issuer
        "token_nested": {"success": True, "data": {"token": jwt, "expiresIn": 3600, "expiresAt": ts}, "timestamp": ts},
        "token_flat": {"success": True, "token": jwt, "expiresIn": 3600, "expiresAt": ts},
        "token_no_expires": {"data": {"token": jwt}},
        "token_expires_float": {"token": jwt, "expiresIn": 1.5},
        "token_expires_zero": {"token": jwt, "expiresIn": 0},
        "token_expires_negative": {"token": jwt, "expiresIn": -30},
        "token_expires_huge": {"token": jwt, "expiresIn": 1e300},
        "token_expires_string": {"data": {"token": jwt, "expiresIn": "3600"}},
        "token_expires_null": {"token": jwt, "expiresIn": None},
        "token_empty": {"data": {"token": ""}},
        "token_empty_nested_flat_present": {"data": {"token": ""}, "token": jwt},
        "token_number": {"token": 12345},
        "token_data_null_flat": {"data": None, "token": jwt},
        "token_data_string_flat": {"data": "x", "token": jwt},
        "token_nested_and_flat": {"data": {"token": "nested"}, "token": "flat"},
        "token_missing": {"success": True, "data": {}},
        # validate
        "validate_true": {"success": True, "data": {"authenticated": True, "user": user, "expiresAt": ts}, "timestamp": ts},
        "validate_false": {"success": True, "data": {"authenticated": False}, "timestamp": ts},
        "validate_false_error": {"success": True, "data": {"authenticated": False, "error": "Invalid token"}},
        "validate_true_no_user": {"data": {"authenticated": True}},
        "validate_true_user_null": {"data": {"authenticated": True, "user": None}},
        "validate_numeric_id": {"data": {"authenticated": True, "user": {"id": 42}}},
        "validate_empty_id": {"data": {"authenticated": True, "user": {"id": ""}}},
        "validate_float_id": {"data": {"authenticated": True, "user": {"id": 4.2}}},
        "validate_authenticated_string": {"data": {"authenticated": "true", "user": user}},
        "validate_authenticated_missing": {"data": {"user": user}},
        "validate_not_nested": {"authenticated": True, "user": user},
        # user
        "user_full": {"success": True, "data": {"user": full_user, "authenticated": True}, "timestamp": ts},
        "user_minimal": {"data": {"user": {"id": "u1"}}},
        "user_not_authenticated": {"data": {"authenticated": False}},
        "user_missing": {"data": {"authenticated": True}},
        "user_roles_null": {"data": {"user": dict(user, roles=None)}},
        "user_roles_wrong": {"data": {"user": dict(user, roles="admin")}},
        "user_username_number": {"data": {"user": dict(user, username=7)}},
        # roles and permissions (the refresh endpoints answer the same shape)
        "roles": {"data": {"userId": "u1", "roles": ["admin", "viewer"], "environment": "dev", "application": "app"}},
        "roles_empty": {"data": {"userId": "u1", "roles": []}},
        "roles_missing": {"data": {"userId": "u1"}},
        "roles_null": {"data": {"roles": None}},
        "roles_string": {"data": {"roles": "admin"}},
        "roles_mixed": {"data": {"roles": ["admin", 1, None]}},
        "roles_data_missing": {"roles": ["admin"]},
        "roles_data_null": {"data": None},
        "roles_unicode": {"data": {"roles": ["adm\u00edn", "\U0001f600", ""]}},
        "roles_with_success": {"success": True, "data": {"roles": ["a"]}, "timestamp": ts},
        "permissions": {"data": {"userId": "u1", "permissions": ["doc:read", "doc:write"], "environment": "dev", "application": "app"}},
        "permissions_missing": {"data": {"userId": "u1"}},
        "permissions_null": {"data": {"permissions": None}},
        "permissions_object": {"data": {"permissions": {"doc": "read"}}},
        # logout
        "logout": {"success": True, "message": "Logged out", "timestamp": ts},
        # error bodies
        "error_miso": {"errors": ["Invalid token"], "type": "/Errors/Unauthorized", "title": "Unauthorized", "statusCode": 401, "instance": "/api/v1/auth/roles", "authMethod": "bearer", "correlationId": "c-1"},
        "error_miso_client_token": {"errors": ["Client token expired"], "statusCode": 401, "authMethod": "client-token"},
        "error_rfc7807": {"type": "about:blank", "title": "Too Many Requests", "status": 429, "detail": "slow down", "instance": "/api/v1/auth/validate"},
        "error_rfc7807_title_only": {"type": "about:blank", "title": "Bad Gateway", "status": 502},
        "error_wrapped": {"error": {"errors": ["nope"], "authMethod": "client-token", "statusCode": 401}},
        "error_string": {"error": "Invalid token"},
        "error_errors_not_strings": {"errors": [1, {"m": "x"}], "title": "t"},
        "error_errors_empty": {"errors": []},
        "error_token_in_message": {"errors": [f"token {jwt} is expired"], "detail": f"bad {jwt}", "title": jwt},
        "error_long_message": {"errors": ["word " * 400]},
        "error_no_known_field": {"status": 500, "foo": "bar"},
        # wrong types carrying a token (what a decode error must not repeat)
        "wrong_type_roles_token": {"data": {"roles": jwt}},
        "wrong_type_authenticated_token": {"data": {"authenticated": jwt}},
        "wrong_type_user_token": {"data": {"user": jwt}},
        "wrong_type_expires_token": {"token": "t", "expiresIn": jwt},
        "wrong_type_id_token": {"data": {"authenticated": True, "user": {"id": [jwt]}}},
        # positional forms that carry no field names
        "positional_roles": {"data": [["admin"]]},
        "positional_top": [[["admin"]]],
        "positional_validation": [[True]],
        "positional_token": [{"token": "t"}],
        "positional_user": {"data": {"user": ["u1", "ana"]}},
    }
    for name, body in shapes.items():
        write(t, f"{name}.json", json.dumps(body, ensure_ascii=False))
    write(t, "duplicate_roles.json", '{"data":{"roles":["a"],"roles":["b"]}}')
    write(t, "duplicate_token.json", '{"token":"a","token":"b"}')
    write(t, "html_502.html", "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>\n")
    write(t, "html_with_token.html", f"<html><body>Bearer {jwt}</body></html>")
    write(t, "empty", b"")
    write(t, "whitespace", " \r\n\t ")
    write(t, "truncated.json", json.dumps(shapes["roles"])[:25])
    write(t, "truncated_token.json", json.dumps(shapes["token_nested"])[:60])
    write(t, "not_json.txt", "Service Unavailable")
    write(t, "null.json", "null")
    write(t, "number.json", "429")
    write(t, "non_utf8", b'{"errors":["\xff\xfe bad"]}\xc3\x28')
    write(t, "control_chars", "error\x00\x01\x1b[31m red\x7f " + "x" * 30)
    write(t, "deep_nesting.json", '{"data":' + "[" * 300 + "]" * 300 + "}")
    write(t, "long_body.txt", ("ab " * 20000))
    # Junk in fields no decoder reads (cf. jwt_payload/found_*): still a roles answer.
    write(t, "ignored_invalid_utf8.json", b'{"data":{"roles":["a"]},"x":"\x90"}')
    write(t, "ignored_unpaired_surrogate.json", '{"data":{"roles":["a"]},"x":"\\ud800"}')
    write(t, "ignored_deep.json", '{"data":{"roles":["a"]},"x":' + "[" * 200 + "]" * 200 + "}")


def envelope_seeds() -> None:
    t = "cache_envelope"
    user = {"id": "u1", "username": "ana", "email": "ana@example.com", "firstName": "Ana", "lastName": "Lima", "roles": ["admin"]}
    exp = 1767225700000
    envelopes = {
        "validation": {"miso": "token_validation", "exp": exp, "v": {"uid": "u1", "user": user}},
        "validation_uid_only": {"miso": "token_validation", "exp": exp, "v": {"uid": "u1"}},
        "validation_empty_principal": {"miso": "token_validation", "exp": exp, "v": {}},
        "validation_null": {"miso": "token_validation", "exp": exp, "v": None},
        "user": {"miso": "user", "exp": exp, "v": user},
        "user_numeric_id": {"miso": "user", "exp": exp, "v": {"id": 42}},
        "user_null": {"miso": "user", "exp": exp, "v": None},
        "user_empty_id": {"miso": "user", "exp": exp, "v": {"id": ""}},
        "roles": {"miso": "roles", "exp": exp, "v": ["admin", "viewer"]},
        "roles_empty": {"miso": "roles", "exp": exp, "v": []},
        "permissions": {"miso": "permissions", "exp": exp, "v": ["doc:read"]},
        "fields_reordered": {"v": ["a"], "exp": 1, "miso": "roles"},
        "extra_fields": {"miso": "roles", "exp": exp, "v": ["a"], "ver": 2},
        "wrong_kind_name": {"miso": "role", "exp": exp, "v": ["a"]},
        "kind_uppercase": {"miso": "ROLES", "exp": exp, "v": ["a"]},
        "kind_missing": {"exp": exp, "v": ["a"]},
        "kind_number": {"miso": 3, "exp": exp, "v": ["a"]},
        "exp_missing": {"miso": "roles", "v": ["a"]},
        "v_missing": {"miso": "roles", "exp": exp},
        "exp_zero": {"miso": "roles", "exp": 0, "v": ["a"]},
        "exp_u64_max": {"miso": "roles", "exp": 18446744073709551615, "v": ["a"]},
        "exp_beyond_u64": {"miso": "roles", "exp": 18446744073709551616, "v": ["a"]},
        "exp_negative": {"miso": "roles", "exp": -1, "v": ["a"]},
        "exp_float": {"miso": "roles", "exp": 1.5, "v": ["a"]},
        "exp_huge_float": {"miso": "roles", "exp": 1e300, "v": ["a"]},
        "exp_string": {"miso": "roles", "exp": "1767225700000", "v": ["a"]},
        "v_wrong_type": {"miso": "roles", "exp": exp, "v": "admin"},
        "v_nested_junk": {"miso": "roles", "exp": exp, "v": [["a"], {"b": None}]},
        "user_junk": {"miso": "user", "exp": exp, "v": {"id": "u", "roles": {"x": [1, [2, {}]]}}},
        "other_sdk_roles": {"roles": ["a"], "timestamp": 1},
        "other_sdk_user": {"user": user, "timestamp": 1767225600},
        "plain_list": ["admin"],
        "positional": ["roles", exp, ["admin"]],
    }
    for name, body in envelopes.items():
        write(t, f"{name}.json", json.dumps(body))
    write(t, "truncated.json", json.dumps(envelopes["roles"])[:30])
    write(t, "duplicate_kind.json", '{"miso":"roles","miso":"permissions","exp":1,"v":[]}')
    write(t, "escaped_kind.json", '{"miso":"rol\\u0065s","exp":1,"v":["a"]}')
    write(t, "whitespace_around.json", ' \n{"miso":"roles","exp":1,"v":["a"]} \n')
    write(t, "trailing_junk.json", '{"miso":"roles","exp":1,"v":["a"]}x')
    write(t, "deep_nesting.json", '{"miso":"roles","exp":1,"v":' + "[" * 300 + "]" * 300 + "}")
    write(t, "empty", b"")
    write(t, "non_utf8", b'{"miso":"roles","exp":1,"v":["\xff"]}')
    write(t, "null.json", "null")
    write(t, "ignored_invalid_utf8.json", b'{"miso":"roles","exp":1,"v":["a"],"x":"\x90"}')
    write(t, "ignored_deep.json", '{"miso":"roles","exp":1,"v":["a"],"x":' + "[" * 200 + "]" * 200 + "}")
    compact_seeds(t, user, exp)


def compact_seeds(t: str, user: dict, exp: int) -> None:
    """Envelopes spelled as the crate writes them (compact, in order): the hit path reads
    their payload without serde, and must read it as serde would."""
    def compact(body) -> str:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    def validation(payload: str) -> str:
        return '{"miso":"token_validation","exp":%d,"v":%s}' % (exp, payload)

    principal = {"uid": "u1", "user": user}
    write(t, "compact_validation.json", compact({"miso": "token_validation", "exp": exp, "v": principal}))
    write(t, "compact_roles.json", compact({"miso": "roles", "exp": exp, "v": ["admin", "viewer"]}))
    write(t, "compact_validation_non_ascii.json", validation(compact({"uid": "élève", "user": {"id": "élève", "n": -0, "x": [True, False, None, {}]}})))
    write(t, "compact_validation_repeated_uid.json", validation('{"uid":"a","uid":"b"}'))
    write(t, "compact_validation_escaped_uid.json", validation('{"uid":"a\\"b","user":null}'))
    write(t, "compact_validation_uid_null.json", validation('{"uid":null}'))
    write(t, "compact_validation_fraction.json", validation('{"uid":"u","user":{"id":"u","n":1.5}}'))
    write(t, "compact_validation_deep.json", validation('{"uid":"u","user":' + "[" * 40 + "]" * 40 + "}"))
    write(t, "compact_validation_trailing_comma.json", validation('{"uid":"u",}'))
    write(t, "compact_roles_with_number.json", '{"miso":"roles","exp":%d,"v":["admin",1]}' % exp)
    write(t, "compact_roles_invalid_utf8.json", b'{"miso":"roles","exp":1,"v":["admin","\xc3("]}')


if __name__ == "__main__":
    jwt_seeds()
    responses_seeds()
    envelope_seeds()
