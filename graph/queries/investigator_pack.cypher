// ringwatch investigator query pack — generated from graph/queries/investigator.py by
// `ringwatch query-pack`; do not edit by hand. Set parameters first, e.g.
// :param account_id => 'acc_000042'

// Why is this account flagged?
// Its scores, label and stored reasons; what it shares with risky accounts now; its ring and verdict.
// :param account_id => 'acc_000042'
MATCH (a:Account {account_id: $account_id})
OPTIONAL MATCH (a)-[:USED_DEVICE|USED_CARD|USED_IP|WITHDREW_TO|HAS_EMAIL|HAS_PHONE|REDEEMED]->(n)<-[:USED_DEVICE|USED_CARD|USED_IP|WITHDREW_TO|HAS_EMAIL|HAS_PHONE|REDEEMED]-(b:Account)
WHERE b <> a AND (b.risk_label IS NOT NULL AND b.risk_label <> 'clear' OR b.known_label IN ['collusion', 'promo_abuse', 'bot_farm']) AND COUNT { (n)<--() } <= 100
WITH a, n, collect(DISTINCT b.account_id) AS risky_peers
WITH a, collect(CASE WHEN n IS NULL THEN null ELSE
       {identifier: labels(n)[0] + ' ' + coalesce(n.device_id, n.card_hash, n.ip, n.email_hash, n.phone_hash, n.address, n.code), users: COUNT { (n)<--() }, risky_peers: risky_peers} END) AS shared
OPTIONAL MATCH (a)-[:MEMBER_OF]->(r:Ring {status: 'active'})
OPTIONAL MATCH (run:ScoringRun {run_id: a.risk_run_id})
RETURN a.account_id AS account_id, a.risk_label AS label, a.risk_score AS score,
       a.risk_collusion AS collusion,
       a.risk_promo_abuse AS promo_abuse,
       a.risk_bot_farm AS bot_farm,
       a.risk_reasons AS reasons, a.risk_model_version AS model_version, a.risk_run_id AS run_id,
       a.risk_flagged_by AS flagged_by, run.policy AS policy,
       run.threshold_collusion AS threshold_collusion,
       run.threshold_promo_abuse AS threshold_promo_abuse,
       run.threshold_bot_farm AS threshold_bot_farm,
       a.known_label AS known_label, a.verdict AS verdict, r.ring_id AS ring_id, r.kind AS ring_kind,
       shared;

// Everyone in this account's ring, and what they share
// One row per member: label, score, and the identifiers it shares with other members of the ring.
// :param account_id => 'acc_000042'
MATCH (:Account {account_id: $account_id})-[:MEMBER_OF]->(r:Ring {status: 'active'})
MATCH (m:Account)-[:MEMBER_OF]->(r)
OPTIONAL MATCH (m)-[:USED_DEVICE|USED_CARD|USED_IP|WITHDREW_TO|HAS_EMAIL|HAS_PHONE|REDEEMED]->(n)<-[:USED_DEVICE|USED_CARD|USED_IP|WITHDREW_TO|HAS_EMAIL|HAS_PHONE|REDEEMED]-(o:Account)-[:MEMBER_OF]->(r)
WHERE o <> m
WITH r, m, collect(DISTINCT labels(n)[0] + ' ' + coalesce(n.device_id, n.card_hash, n.ip, n.email_hash, n.phone_hash, n.address, n.code)) AS shares
OPTIONAL MATCH (m)-[t:TRANSFERRED_TO]-(o2:Account)-[:MEMBER_OF]->(r)
RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, m.account_id AS member,
       m.risk_label AS label, m.risk_score AS score, shares,
       count(DISTINCT o2) AS transfer_partners_in_ring
ORDER BY score DESC, member;

// Top rings by score
// Active rings, highest mean member risk first: kind, size, activity span, evidence.
// :param limit => 20
MATCH (r:Ring {status: 'active'})
RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, r.score AS score,
       toString(date(r.first_seen)) AS first_seen, toString(date(r.last_seen)) AS last_seen,
       toString(r.first_detected) AS first_detected, r.evidence AS evidence
ORDER BY score DESC, size DESC, ring_id LIMIT $limit;

// New rings since a date
// Rings first detected on or after the date (ISO, e.g. 2026-11-01), newest first.
// :param since => '2026-11-01'
MATCH (r:Ring {status: 'active'}) WHERE r.first_detected >= datetime($since)
RETURN r.ring_id AS ring_id, r.kind AS kind, r.size AS size, r.score AS score,
       toString(r.first_detected) AS first_detected, r.evidence AS evidence
ORDER BY r.first_detected DESC, score DESC;

// Accounts sharing a card, device or wallet with this account
// Each other account, what it shares, and its risk.
// :param account_id => 'acc_000042'
MATCH (x:Account {account_id: $account_id})-[:USED_CARD|USED_DEVICE|WITHDREW_TO]->(n)<-[:USED_CARD|USED_DEVICE|WITHDREW_TO]-(b:Account)
WHERE b <> x
RETURN b.account_id AS account_id, labels(n)[0] AS kind, coalesce(n.device_id, n.card_hash, n.ip, n.email_hash, n.phone_hash, n.address, n.code) AS identifier,
       COUNT { (n)<--() } AS users, b.risk_label AS label, b.risk_score AS score, b.known_label AS known_label
ORDER BY score DESC, account_id;

// Accounts marked as false positives
// Every false-positive verdict, newest first, with the account's current label and the investigator's note.
MATCH (v:Verdict {verdict: 'false_positive'})-[:ABOUT]->(a:Account)
RETURN a.account_id AS account_id, a.risk_label AS label, a.risk_score AS score, v.threat AS flagged_as,
       v.note AS note, v.by AS by, toString(v.at) AS at, a.verdict = v.verdict AS still_current
ORDER BY v.at DESC;

// Scoring runs (a 'running' one that is old was killed: rerun `ringwatch score`)
// Every run with its model, status, counts and times.
MATCH (r:ScoringRun)
RETURN r.run_id AS run_id, r.status AS status, r.model_version AS model, r.written AS written,
       r.flagged AS flagged, r.label_changes AS label_changes, r.rings AS rings,
       toString(r.started_at) AS started, toString(r.finished_at) AS finished
ORDER BY r.started_at DESC;

// Open monitoring alerts (drift, efficacy, data quality, job health)
// Alerts raised by `ringwatch monitor` and not resolved by a later run, most severe and newest first.
MATCH (x:Alert {status: 'open'})
RETURN x.alert_id AS alert_id, x.rule AS rule, x.severity AS severity, x.subject AS subject,
       x.observed AS observed, x.threshold AS threshold, x.message AS message, x.run_id AS run_id,
       toString(x.at) AS at, x.delivery AS delivery
ORDER BY CASE x.severity WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, x.at DESC;
