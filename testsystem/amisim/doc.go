// Package amisim is an Asterisk Manager Interface (AMI) simulator for tests: a TCP server that
// speaks the real wire protocol of Asterisk 22 (banner, CRLF packets, LF accepted on input) and
// plays recorded calls to its logged-in clients.
//
// What it simulates:
//   - the session: banner, plain and MD5 (Challenge) login, failed login (delay, error, close),
//     Permission denied before login, Events (event mask), Ping, Logoff, unknown or missing
//     action, ActionID echoed only when sent, the 1024-byte line limit;
//   - event delivery by class: the per-user read classes and the Login/Events mask, filtered on
//     each event's Privilege; Timestamp headers when Config.Timestamps is set (timestampevents);
//   - Asterisk's writetimeout: a client that does not drain its socket within WriteTimeout is
//     disconnected, the others keep receiving;
//   - CoreShowChannels, answered from the live channel set tracked from the events played
//     (Newchannel adds, every later event with the Uniqueid updates, BridgeEnter/BridgeLeave set
//     BridgeId, Hangup removes);
//   - Originate (async: queued reply, then the events of the OnOriginate hook, then
//     OriginateResponse with the ActionID; sync: the reply after the events), Redirect and Hangup
//     (acknowledged, no effect), and custom actions through Handle;
//   - failures for tests: DropConnections (TCP reset), SetSecret, IgnorePings (half-open link).
//
// Recordings: LoadRecording reads a captured `.ami` stream and keeps its events with an offset
// from the stream's own clock (CEL EventTime, Cdr EndTime, Newchannel Uniqueid epochs, EventTV,
// Timestamp). Fresh gives a copy with new Uniqueids, channel names and bridge ids so one capture
// can be played as many distinct calls; Retime moves every time it carries; Merge interleaves
// several calls on one timeline. Play and Player send a recording, paced or as fast as possible,
// and can stop at a packet and resume (to kill the gateway mid-call).
//
// Scenarios: a small YAML format (ParseScenario, LoadScenario; see Scenario and
// ../README.md) describes a call — inbound, outbound or internal, the extensions that ring (one,
// a ring group, a ringall queue with retries), who answers when (or busy, or the caller giving
// up), talk time, blind/attended/redirect transfers, MixMonitor recording, click-to-call — and a
// Generator turns it into the events Asterisk 20/22 sends for that call, as a Recording that
// plays like a captured one. Two channel styles: StyleLocal, the Local-channel test PBX of
// shared/fixtures/ami-asterisk22 (shape_test.go checks the generator against those recordings),
// and StylePJSIP, a FreePBX-style PBX. GenerateOriginate makes the click-to-call of an Originate
// action; ScenarioOriginate and Server.OriginateScenario answer Originate actions with it.
//
// What it does not simulate: a dialplan (a generated call follows its scenario, not
// extensions.conf; events come only from recordings, scenarios, hooks and Broadcast; actions
// other than the above have no effect on the channel set), write permissions of actions,
// Command, Status and other list actions, eventfilter, TLS, HTTP/ARI, authlimit,
// allowmultiplelogin=no, and `Response: Follows` (Asterisk <= 13).
package amisim
