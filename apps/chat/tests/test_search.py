"""Message search (apps/chat/search.py): the query language, what matches (every language's
case, inside words, phrases, filters), who may find what (the one access rule), paging, query
counts; the search page; and the room page opened at a message (``?around=``) with its newer
history (``?after=``)."""

import re

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.chat import search, services
from apps.chat.errors import RoomNotFound
from apps.chat.models import Message
from apps.core.ratelimit import RateLimited

pytestmark = pytest.mark.django_db


def say(room, author, body):
    return services.message_send(room=room, author=author, body=body).message


def found(user, q, **kwargs):
    return [r.message.body for r in search.search_messages(user=user, q=q, **kwargs).results]


# --- The query language ------------------------------------------------------------------------
def test_parse_splits_words_phrases_and_filters():
    query = search.parse('Deploy "the  Big one" from:Bob FROM:@carol in:#Ops has:file')
    assert query.terms == ("deploy", "the  big one")
    assert query.raw_terms == ("Deploy", "the  Big one")
    assert query.authors == ("Bob", "carol")
    assert query.rooms == ("Ops",)
    assert query.has_file is True


def test_parse_treats_unknown_keys_and_urls_as_text():
    query = search.parse("https://example.com/x note:later")
    assert query.terms == ("https://example.com/x", "note:later")


def test_parse_folds_terms_like_the_stored_text():
    assert search.parse("ЁЖИК Straße").terms == ("ежик", "strasse")


def test_filters_alone_are_a_query():
    assert search.parse("from:bob").terms == ()


@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("", "Type something"),
        ("   ", "Type something"),
        ('""', "Type something"),
        ("x" * 201, "at most 200 characters"),
        (" ".join(f"w{i}" for i in range(11)), "at most 10"),
        ("from:", "needs a value"),
        ("has:picture", "has:file"),
        ("nul\x00byte", "control characters"),
        (None, "Type something"),
    ],
)
def test_bad_queries_are_clear_validation_errors(q, words):
    with pytest.raises(ValidationError) as exc:
        search.parse(q)
    assert words in " ".join(exc.value.messages)
    assert exc.value.code == "q"


# --- What matches ------------------------------------------------------------------------------
def test_cyrillic_matches_ignore_case(public_room, alice):
    say(public_room, alice, "Привет всем")
    say(public_room, alice, "ПРИВЕТ!")
    say(public_room, alice, "пока")
    assert found(alice, "привет") == ["ПРИВЕТ!", "Привет всем"]
    assert found(alice, "ПрИвЕт") == ["ПРИВЕТ!", "Привет всем"]


def test_yo_and_ye_are_the_same_letter(public_room, alice):
    say(public_room, alice, "Колючий ёжик")
    say(public_room, alice, "ещё один ежик")
    assert found(alice, "ежик") == ["ещё один ежик", "Колючий ёжик"]
    assert found(alice, "ЁЖИК") == ["ещё один ежик", "Колючий ёжик"]


def test_substrings_inside_words_match(public_room, alice):
    say(public_room, alice, "The deployment finished")
    assert found(alice, "ploym") == ["The deployment finished"]


def test_every_term_must_match(public_room, alice):
    say(public_room, alice, "red apple")
    say(public_room, alice, "green apple")
    say(public_room, alice, "red car")
    assert found(alice, "apple red") == ["red apple"]


def test_a_phrase_is_one_substring_with_its_spaces(public_room, alice):
    say(public_room, alice, "the big one is here")
    say(public_room, alice, "one big thing")
    assert found(alice, '"big one"') == ["the big one is here"]
    assert found(alice, "big one") == ["one big thing", "the big one is here"]


@pytest.mark.parametrize("q", ["%", "_", "50%", "a_b", "\\"])
def test_like_wildcards_are_literal(public_room, alice, q):
    say(public_room, alice, "plain text without specials")
    say(public_room, alice, "50% off for a_b \\ fans")
    assert found(alice, q) == ["50% off for a_b \\ fans"]


def test_from_filters_by_username_ignoring_case(public_room, alice, bob, carol):
    say(public_room, alice, "status from alice")
    say(public_room, bob, "status from bob")
    say(public_room, carol, "status from carol")
    assert found(alice, "status from:BOB") == ["status from bob"]
    assert found(alice, "from:bob from:carol") == ["status from carol", "status from bob"]
    assert found(alice, "status from:nobody") == []


def test_in_filters_by_a_visible_rooms_name(public_room, alice, bob):
    ops = services.room_create(name="Ops-Team", creator=alice)
    say(public_room, alice, "deploy in general")
    say(ops, alice, "deploy in ops")
    assert found(alice, "deploy in:ops-team") == ["deploy in ops"]
    assert found(alice, "in:OPS-TEAM") == ["deploy in ops"]
    assert found(alice, "deploy in:nowhere") == []  # not an error: nothing matches


def test_in_a_cyrillic_room_name_ignores_case(alice):
    room = services.room_create(name="Новости", creator=alice)
    say(room, alice, "первая")
    assert found(alice, "in:новости") == ["первая"]


def test_in_does_not_reach_a_private_group_of_others(alice, bob, carol):
    group = services.room_create(name="secret-plans", creator=alice, private=True, members=["bob"])
    say(group, alice, "the plan")
    assert found(carol, "in:secret-plans") == []
    assert found(bob, "in:secret-plans") == ["the plan"]


def test_has_file_keeps_messages_with_attachments(public_room, alice):
    say(public_room, alice, "report attached")
    with_file = say(public_room, alice, "report, see file")
    Message.objects.filter(pk=with_file.pk).update(has_attachments=True)
    assert found(alice, "report has:file") == ["report, see file"]
    assert found(alice, "has:file") == ["report, see file"]


# --- Who finds what ----------------------------------------------------------------------------
def test_a_private_group_is_found_by_its_members_only(alice, bob, carol):
    group = services.room_create(name="g", creator=alice, private=True, members=["bob"])
    say(group, alice, "quarterly numbers")
    assert found(alice, "quarterly") == ["quarterly numbers"]
    assert found(bob, "quarterly") == ["quarterly numbers"]
    assert found(carol, "quarterly") == []


def test_a_conversation_is_found_by_its_two_people_only(private_room, alice, bob, carol):
    say(private_room, alice, "between us two")
    assert found(bob, "between us") == ["between us two"]
    assert found(carol, "between us") == []
    assert found(carol, "from:alice") == []


def test_room_restricts_and_a_hidden_room_is_not_found(public_room, private_room, alice, carol):
    say(public_room, alice, "hello public")
    say(private_room, alice, "hello private")
    assert found(alice, "hello", room_id=public_room.pk) == ["hello public"]
    with pytest.raises(RoomNotFound):
        search.search_messages(user=carol, q="hello", room_id=private_room.pk)
    with pytest.raises(RoomNotFound):
        search.search_messages(user=carol, q="hello", room_id=999_999)


def test_leaving_a_private_group_stops_finding_it(alice, bob):
    group = services.room_create(name="g2", creator=alice, private=True, members=["bob"])
    say(group, alice, "before leaving")
    services.room_leave(room=group, user=bob)
    assert found(bob, "leaving") == []


def test_deleted_messages_never_match(public_room, alice):
    message = say(public_room, alice, "regrettable words")
    services.message_delete(room=public_room, user=alice, message_id=message.pk)
    assert found(alice, "regrettable") == []
    assert found(alice, "from:alice") == []


def test_an_edit_replaces_what_matches(public_room, alice):
    message = say(public_room, alice, "old wording")
    services.message_edit(room=public_room, user=alice, message_id=message.pk, body="new text")
    assert found(alice, "wording") == []
    assert found(alice, "new") == ["new text"]


def test_anonymous_finds_nothing(public_room, alice):
    from django.contrib.auth.models import AnonymousUser

    say(public_room, alice, "anything")
    assert found(AnonymousUser(), "anything") == []


# --- Paging and cost -----------------------------------------------------------------------------
def test_keyset_pages_are_newest_first_and_stable(public_room, alice, unlimited):
    bodies = [f"note {i}" for i in range(7)]
    for body in bodies:
        say(public_room, alice, body)
    first = search.search_messages(user=alice, q="note", limit=3)
    assert [r.message.body for r in first.results] == ["note 6", "note 5", "note 4"]
    say(public_room, alice, "note new")  # arrives meanwhile: the next pages do not shift
    second = search.search_messages(user=alice, q="note", limit=3, before=first.next_cursor)
    third = search.search_messages(user=alice, q="note", limit=3, before=second.next_cursor)
    assert [r.message.body for r in second.results] == ["note 3", "note 2", "note 1"]
    assert [r.message.body for r in third.results] == ["note 0"]
    assert third.next_cursor is None


@pytest.mark.parametrize(
    "cursor", ["x", "1-", "-1", "1-2", "١٢", "9" * 19, "9" * 30, " 12", "12\n"]
)
def test_a_bad_cursor_is_a_validation_error(alice, cursor):
    with pytest.raises(ValidationError) as exc:
        search.search_messages(user=alice, q="x", before=cursor)
    assert exc.value.code == "before"


@pytest.mark.parametrize("count", [5, 40])
def test_queries_per_page_do_not_grow_with_results(
    public_room, private_room, alice, bob, carol, unlimited, django_assert_num_queries, count
):
    people = [alice, bob, carol]
    for i in range(count):
        say(public_room, people[i % 3], f"needle {i}")
        say(private_room, people[i % 2], f"needle dm {i}")
    Message.objects.filter(body__endswith="1").update(has_attachments=True)
    # the messages with authors, profiles and rooms + the file names + the conversation's
    # participants (its title)
    with django_assert_num_queries(3):
        page = search.search_messages(user=alice, q="needle", limit=20)
    assert len(page.results) == (10 if count == 5 else 20)
    titles = {r.room_title for r in page.results}
    assert titles == {"general", "Bob"}
    # in: adds the one query that resolves the room's name
    with django_assert_num_queries(3):
        search.search_messages(user=alice, q="needle in:general", limit=20)


def test_search_is_rate_limited(settings, public_room, alice, frozen_clock):
    settings.PARLEY_SEARCH_RATE = (2, 10)
    search.search_messages(user=alice, q="a")
    search.search_messages(user=alice, q="a")
    with pytest.raises(RateLimited) as exc:
        search.search_messages(user=alice, q="a")
    assert "searching too fast" in exc.value.message


# --- Snippets ------------------------------------------------------------------------------------
def test_snippet_is_around_the_first_match_and_highlights_each_term():
    body = "word " * 100 + "the Needle is here, and a needle again " + "tail " * 100
    snip = search.snippet_for(body, ["needle", "HERE"])
    assert len(snip.text) <= 202
    assert snip.text.startswith("…") and snip.text.endswith("…")
    marked = [snip.text[s:e] for s, e in snip.highlights]
    assert marked == ["Needle", "here", "needle"]


def test_snippet_highlights_cyrillic_case_and_yo():
    snip = search.snippet_for("Колючий Ёжик и ПРИВЕТ", ["ежик", "привет"])
    assert [snip.text[s:e] for s, e in snip.highlights] == ["Ёжик", "ПРИВЕТ"]


def test_snippet_without_a_visible_match_highlights_nothing():
    # "ss" folds from "ß": found by search_text, but never a wrong highlight.
    snip = search.snippet_for("Die Straße", ["strasse"])
    assert snip.text == "Die Straße" and snip.highlights == ()


def test_snippet_parts_cover_the_text():
    snip = search.snippet_for("a <b> a", ["a"])
    assert snip.parts == [("a", True), (" <b> ", False), ("a", True)]


def test_snippet_shows_the_text_as_read_not_its_markdown(public_room, alice):
    """The snippet is the rendered message's text: "**Quokka**" shows as "Quokka", marked;
    a list's items and paragraphs stay apart; what looks like a tag stays text."""
    say(public_room, alice, "the **Quokka**-crossing plan\n\n- one\n- two & <b>three</b>")
    (result,) = search.search_messages(user=alice, q="quokka").results
    assert result.snippet.text == "the Quokka-crossing plan one two & <b>three</b>"
    assert result.snippet.parts[:2] == [("the ", False), ("Quokka", True)]


# --- The search page -----------------------------------------------------------------------------
def test_search_page_lists_results_with_escaped_marked_snippets(alice_client, public_room, alice):
    message = say(public_room, alice, "<script>alert(1)</script> deploy now")
    response = alice_client.get(reverse("chat:search"), {"q": "deploy"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; <mark>deploy</mark> now" in html
    url = f"/chat/room/{public_room.pk}/?around={message.seq}#message-{message.pk}"
    assert f'href="{url}"' in html
    assert f'datetime="{message.created_at.isoformat()}"'[:30] in html
    assert 'value="deploy"' in html  # the forms are prefilled


def test_search_page_pages_on_with_htmx(alice_client, public_room, alice, settings, unlimited):
    settings.PARLEY_SEARCH_PAGE_SIZE = 2
    for i in range(5):
        say(public_room, alice, f"item {i}")
    html = alice_client.get(reverse("chat:search"), {"q": "item"}).content.decode()
    more = re.search(r'hx-get="([^"]+)"', html)[1].replace("&amp;", "&")
    fragment = alice_client.get(more, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in fragment
    assert "</mark> 2" in fragment and "</mark> 1" in fragment and "</mark> 4" not in fragment
    assert "data-page-start" in fragment
    plain = alice_client.get(more).content.decode()  # without JavaScript: a page of its own
    assert "<html" in plain and "</mark> 2" in plain


def test_search_page_empty_and_error_states(alice_client, public_room, alice):
    empty = alice_client.get(reverse("chat:search"), {"q": "zzz"})
    assert empty.status_code == 200 and 'data-testid="search-empty"' in empty.content.decode()
    bad = alice_client.get(reverse("chat:search"), {"q": "x" * 300})
    assert bad.status_code == 400
    assert "at most 200 characters" in bad.content.decode()
    cursor = alice_client.get(reverse("chat:search"), {"q": "x", "before": "nope"})
    assert cursor.status_code == 400
    blank = alice_client.get(reverse("chat:search"))
    assert blank.status_code == 200 and "search-results" not in blank.content.decode()


def test_search_page_needs_a_login(client):
    response = client.get(reverse("chat:search"), {"q": "x"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_every_signed_in_page_has_the_header_search_box(alice_client, public_room):
    for url in (reverse("chat:home"), public_room.get_absolute_url(), reverse("chat:search")):
        html = alice_client.get(url).content.decode()
        assert 'role="search"' in html and 'data-testid="search-input"' in html
        assert 'for="header-search-input"' in html


# --- The room page at a message (?around=) and newer history (?after=) ------------------------
@pytest.fixture
def long_room(public_room, alice, unlimited):
    for i in range(1, 121):
        say(public_room, alice, f"line {i}")
    return public_room


def seqs_in(html):
    return [int(s) for s in re.findall(r'<article id="message-\d+" data-seq="(\d+)"', html)]


def test_around_opens_the_window_around_the_target(alice_client, long_room):
    html = alice_client.get(long_room.get_absolute_url(), {"around": 60}).content.decode()
    assert seqs_in(html) == list(range(35, 86))
    assert 'data-around="60"' in html
    assert f'data-resume-seq="{long_room.last_seq}"' in html
    assert "?before=35" in html  # older history, as usual
    assert f"{reverse('chat:room_history', kwargs={'pk': long_room.pk})}?after=85" in html


def test_around_near_the_end_is_the_present(alice_client, long_room):
    html = alice_client.get(long_room.get_absolute_url(), {"around": 110}).content.decode()
    assert seqs_in(html) == list(range(85, 121))
    assert 'data-around="110"' in html
    assert "data-newer-url" not in html


@pytest.mark.parametrize("around", ["0", "121", "99999999999", "-3", "abc", "", "1e3", "²"])
def test_around_out_of_range_or_garbage_is_the_latest_page(alice_client, long_room, around):
    response = alice_client.get(long_room.get_absolute_url(), {"around": around})
    assert response.status_code == 200
    html = response.content.decode()
    assert seqs_in(html) == list(range(71, 121))
    assert "data-around" not in html


def test_around_a_seq_that_is_no_message_opens_at_the_next_one(
    alice_client, public_room, alice, settings
):
    first = say(public_room, alice, "first")
    services.reaction_add(room=public_room, user=alice, message_id=first.pk, emoji="👍")  # seq 2
    say(public_room, alice, "second")  # seq 3
    html = alice_client.get(public_room.get_absolute_url(), {"around": 2}).content.decode()
    assert 'data-around="3"' in html


def test_around_keeps_the_room_access_rule(client, carol, private_room, alice):
    say(private_room, alice, "private")
    client.force_login(carol)
    assert client.get(private_room.get_absolute_url(), {"around": 1}).status_code == 404
    history = reverse("chat:room_history", kwargs={"pk": private_room.pk})
    assert client.get(history, {"after": 0}).status_code == 404


def test_newer_history_pages_go_forward_by_seq(alice_client, long_room):
    url = reverse("chat:room_history", kwargs={"pk": long_room.pk})
    html = alice_client.get(url, {"after": 20}).content.decode()
    assert seqs_in(html) == list(range(21, 71))
    assert f"{url}?after=70" in html and "<html" not in html
    last = alice_client.get(url, {"after": 70}).content.decode()
    assert seqs_in(last) == list(range(71, 121))
    assert "data-newer-url" not in last  # the present: no more pages


@pytest.mark.parametrize("query", [{"after": "x"}, {"after": "-1"}, {"after": "1", "before": "5"}])
def test_bad_newer_history_requests_are_400(alice_client, long_room, query):
    url = reverse("chat:room_history", kwargs={"pk": long_room.pk})
    assert alice_client.get(url, query).status_code == 400


def test_around_page_query_count_is_constant(alice_client, long_room, django_assert_num_queries):
    url = long_room.get_absolute_url()
    alice_client.get(url)  # warm the session
    with django_assert_num_queries(11):  # the room page's 9, with two page queries instead of one
        alice_client.get(url, {"around": 30})
    with django_assert_num_queries(11):
        alice_client.get(url, {"around": 90})


def test_in_takes_a_quoted_name_with_spaces(alice):
    room = services.room_create(name="Team Room", creator=alice)
    say(room, alice, "standup")
    assert search.parse('in:"team room" standup').rooms == ("team room",)
    assert found(alice, 'in:"team room"') == ["standup"]


def test_a_match_in_a_file_name_shows_the_file_name(public_room, alice):
    from apps.chat.models import Attachment

    message = say(public_room, alice, "see the attachment")
    Attachment.objects.create(
        room=public_room,
        uploader=alice,
        message=message,
        file="attachments/x",
        name="Quarterly-Report.pdf",
        size=1,
        content_type="application/pdf",
    )
    Message.objects.filter(pk=message.pk).update(
        has_attachments=True,
        search_text=search.search_text_for(message.body, ["Quarterly-Report.pdf"]),
    )
    [result] = search.search_messages(user=alice, q="quarterly has:file").results
    snip = result.snippet
    assert snip.text == "see the attachment · Quarterly-Report.pdf"
    assert [snip.text[s:e] for s, e in snip.highlights] == ["Quarterly"]
