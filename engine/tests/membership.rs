//! The membership register and its votes: one member, one vote, whatever the holding.

mod support;

use mutua_engine::*;
use support::*;
use RejectReason::*;

/// A share with alice holding 90 lots, bob 9 and carol 1; dave holds nothing.
fn members_market() -> (Market, InstrumentId, [ParticipantId; 4]) {
    let mut market = Market::new();
    let share = market.share_listed("RIVER-A");
    let people = ["alice", "bob", "carol", "dave"].map(|name| market.contributor(name));
    market.issue(share, &[(people[0], 90), (people[1], 9), (people[2], 1)]);
    (market, share, people)
}

fn propose(market: &mut Market, title: &str, closes_at: Timestamp) -> ResolutionId {
    let issuer = market.issuer;
    match market.ok(
        issuer,
        CommandKind::ProposeResolution {
            title: title.to_string(),
            closes_at,
        },
    ) {
        Ack::Resolution(id) => id,
        other => panic!("resolution acknowledged as {other:?}"),
    }
}

fn vote(resolution: ResolutionId, choice: VoteChoice) -> CommandKind {
    CommandKind::CastVote { resolution, choice }
}

fn close(resolution: ResolutionId) -> CommandKind {
    CommandKind::CloseResolution { resolution }
}

#[test]
fn every_holder_is_a_member_from_the_time_it_first_held_a_unit() {
    let (mut market, share, [alice, bob, carol, dave]) = members_market();
    let issued_at = market.now;
    assert_eq!(
        market.engine.members_of(market.issuer),
        vec![(alice, issued_at), (bob, issued_at), (carol, issued_at)]
    );
    market.advance(DAY_NS);
    market.sell(carol, share, PAR, 1);
    market.deposit(dave, PAR);
    market.buy(dave, share, PAR, 1);
    assert_eq!(
        market.engine.members_of(market.issuer),
        vec![
            (alice, issued_at),
            (bob, issued_at),
            (dave, issued_at + DAY_NS)
        ]
    );
    assert_eq!(market.engine.member_since(market.issuer, carol), None);
}

#[test]
fn each_member_votes_once_whatever_its_holding_and_the_count_is_final_at_the_close() {
    let (mut market, _, [alice, bob, carol, _]) = members_market();
    let closes_at = market.now + 7 * DAY_NS;
    let resolution = propose(&mut market, "Build the second housing block", closes_at);
    market.ok(alice, vote(resolution, VoteChoice::Against));
    assert_eq!(
        market.events,
        vec![Event::VoteCast {
            resolution,
            member: alice,
            choice: VoteChoice::Against
        }]
    );
    market.ok(bob, vote(resolution, VoteChoice::For));
    market.ok(carol, vote(resolution, VoteChoice::For));
    market.expect_reject(alice, vote(resolution, VoteChoice::For), AlreadyVoted);

    market.at(closes_at);
    market.ok(market.issuer, close(resolution));
    // 90 lots weigh as much as 1: two members for, one against.
    assert_eq!(
        market.events,
        vec![Event::ResolutionClosed {
            resolution,
            organization: market.issuer,
            votes_for: 2,
            votes_against: 1,
            abstentions: 0,
            votes_lapsed: 0,
            passed: true
        }]
    );
    let result = market
        .engine
        .resolution(resolution)
        .unwrap()
        .result
        .unwrap();
    assert!(result.passed && result.closed_at == closes_at);
}

#[test]
fn a_member_who_sells_out_loses_its_vote_on_open_resolutions() {
    let (mut market, share, [alice, bob, carol, dave]) = members_market();
    let closes_at = market.now + 7 * DAY_NS;
    let resolution = propose(&mut market, "Raise the rent cap", closes_at);
    market.ok(alice, vote(resolution, VoteChoice::Against));
    market.ok(carol, vote(resolution, VoteChoice::For));
    market.ok(bob, vote(resolution, VoteChoice::Abstain));
    // Carol sells her one unit to dave, then buys one back: her vote is gone all the same.
    market.advance(DAY_NS);
    market.sell(carol, share, PAR, 1);
    market.deposit(dave, PAR);
    market.buy(dave, share, PAR, 1);
    market.ok(dave, vote(resolution, VoteChoice::For));
    market.deposit(carol, PAR);
    market.buy(carol, share, PAR, 1);
    market.sell(alice, share, PAR, 1);
    assert!(market.engine.member_since(market.issuer, carol).is_some());

    market.at(closes_at);
    market.ok(market.issuer, close(resolution));
    assert_eq!(
        market.events,
        vec![Event::ResolutionClosed {
            resolution,
            organization: market.issuer,
            votes_for: 1,
            votes_against: 1,
            abstentions: 1,
            votes_lapsed: 1,
            passed: false
        }]
    );
}

#[test]
fn unknown_resolution() {
    let (mut market, _, [alice, ..]) = members_market();
    market.expect_reject(
        alice,
        vote(ResolutionId(0), VoteChoice::For),
        UnknownResolution,
    );
    market.expect_reject(market.issuer, close(ResolutionId(0)), UnknownResolution);
}

#[test]
fn voting_closed() {
    let (mut market, _, [alice, bob, ..]) = members_market();
    let closes_at = market.now + DAY_NS;
    let resolution = propose(&mut market, "Elect the board", closes_at);
    market.at(closes_at);
    market.expect_reject(alice, vote(resolution, VoteChoice::For), VotingClosed);
    market.ok(market.issuer, close(resolution));
    market.expect_reject(bob, vote(resolution, VoteChoice::For), VotingClosed);
    market.expect_reject(market.issuer, close(resolution), VotingClosed);
}

#[test]
fn not_a_member() {
    let (mut market, _, [.., dave]) = members_market();
    let closes_at = market.now + DAY_NS;
    let resolution = propose(&mut market, "Elect the board", closes_at);
    market.expect_reject(dave, vote(resolution, VoteChoice::For), NotAMember);
}

#[test]
fn already_voted() {
    let (mut market, _, [alice, ..]) = members_market();
    let closes_at = market.now + DAY_NS;
    let resolution = propose(&mut market, "Elect the board", closes_at);
    market.ok(alice, vote(resolution, VoteChoice::Abstain));
    market.expect_reject(alice, vote(resolution, VoteChoice::Abstain), AlreadyVoted);
}

#[test]
fn voting_still_open() {
    let (mut market, _, _) = members_market();
    let closes_at = market.now + DAY_NS;
    let resolution = propose(&mut market, "Elect the board", closes_at);
    market.at(closes_at - 1);
    market.expect_reject(market.issuer, close(resolution), VotingStillOpen);
}

#[test]
fn resolution_invalid() {
    let (mut market, _, _) = members_market();
    let issuer = market.issuer;
    let now = market.now;
    let too_long = "x".repeat(market.engine.config().resolution_title_bytes_max as usize + 1);
    for (title, closes_at) in [
        (String::new(), now + DAY_NS),
        ("  ".to_string(), now + DAY_NS),
        (too_long, now + DAY_NS),
        ("Fine".to_string(), now),
    ] {
        market.expect_reject(
            issuer,
            CommandKind::ProposeResolution { title, closes_at },
            ResolutionInvalid,
        );
    }
}

#[test]
fn resolutions_full() {
    let mut market = Market::with_config(|config| config.resolutions_open_per_organization_max = 2);
    let now = market.now;
    propose(&mut market, "one", now + DAY_NS);
    let second = propose(&mut market, "two", now + DAY_NS);
    let issuer = market.issuer;
    market.expect_reject(
        issuer,
        CommandKind::ProposeResolution {
            title: "three".into(),
            closes_at: now + DAY_NS,
        },
        ResolutionsFull,
    );
    market.at(now + DAY_NS);
    market.ok(issuer, close(second));
    propose(&mut market, "three", now + 2 * DAY_NS);
}

#[test]
fn not_proposer() {
    let (mut market, _, _) = members_market();
    let closes_at = market.now + DAY_NS;
    let resolution = propose(&mut market, "Elect the board", closes_at);
    let other = market.organization("another co-op");
    market.at(closes_at);
    market.expect_reject(other, close(resolution), NotProposer);
}

#[test]
fn a_title_of_the_maximum_length_is_accepted() {
    let (mut market, _, _) = members_market();
    let longest = "x".repeat(market.engine.config().resolution_title_bytes_max as usize);
    let closes_at = market.now + DAY_NS;
    propose(&mut market, &longest, closes_at);
}
