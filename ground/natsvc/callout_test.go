package natsvc

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/ground/natsvc/natscluster"
	"github.com/airtab/airtab/protocol"
)

// calloutCluster is a three-node cluster authorized by ground's auth
// callout, ground connected to it with its nkey and answering, and the
// registered aircraft D-AIUA's nkey.
type calloutCluster struct {
	c        *natscluster.Cluster
	ground   *nats.Conn
	groundKP nkeys.KeyPair // ground's login
	aircraft nkeys.KeyPair // D-AIUA's, registered
	retiring nkeys.KeyPair // D-AIUA's before a plain rotation, in its grace
	expired  nkeys.KeyPair // D-AIUA's before an earlier rotation, grace over
	issuer   string        // the callout issuer's public key
	until    time.Time     // the end of retiring's grace
	log      *syncBuffer   // the callout's log
}

func startCalloutCluster(t *testing.T, edit ...func(*CalloutConfig)) *calloutCluster {
	t.Helper()
	dir := t.TempDir()
	groundKey, _, err := LoadOrCreateNKey(filepath.Join(dir, "ground.nk"), nkeys.PrefixByteUser)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := LoadOrCreateNKey(filepath.Join(dir, "callout.nk"), nkeys.PrefixByteAccount)
	if err != nil {
		t.Fatal(err)
	}
	c, err := natscluster.Start(t.Context(), natscluster.Config{Dir: dir, ReadyTimeout: hangGuard, Logger: quiet,
		Callout: &natscluster.Callout{GroundNKey: mustPublic(groundKey), Issuer: mustPublic(issuer)},
		// A server waits AuthTimeout for the callout's answer (2 s by
		// default) and then refuses the client: long enough for a
		// loaded machine running -race. Nor does it send its first PING
		// 2 s after the CONNECT: while the callout answers, it would
		// reach nats.go before the PONG it waits for, failing the login.
		Configure: func(_ int, opts *server.Options) error {
			opts.AuthTimeout = hangGuard.Seconds()
			opts.DisableShortFirstPing = true
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := dial(c.URL(), nats.Nkey(mustPublic(groundKey), groundKey.Sign))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	aircraft, _ := nkeys.CreateUser()
	ids := func(context.Context) (map[protocol.AircraftID]string, error) {
		return map[protocol.AircraftID]string{"D-AIUA": mustPublic(aircraft)}, nil
	}
	retiring, _ := nkeys.CreateUser()
	expired, _ := nkeys.CreateUser()
	until := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	old := func(_ context.Context, now time.Time) ([]RetiringIdentity, error) {
		return []RetiringIdentity{{Aircraft: "D-AIUA", NKey: mustPublic(retiring), Until: until},
			{Aircraft: "D-AIUA", NKey: mustPublic(expired), Until: now.Add(-time.Second)}}, nil
	}
	log := &syncBuffer{}
	cfg := CalloutConfig{Conn: nc, Issuer: issuer, Identities: ids, Retiring: old, Logger: slog.New(slog.NewTextHandler(log, nil))}
	for _, e := range edit {
		e(&cfg)
	}
	co, err := StartCallout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(co.Stop)
	// Ground subscribed on one node; a node that has not yet heard of the
	// subscription over its routes sends a login's request to no one.
	for i := range c.Nodes() {
		waitFor(t, "auth callout subscription known on "+c.NodeName(i), func() bool {
			acc, err := c.Server(i).LookupAccount(natscluster.Account)
			return err == nil && acc.SubscriptionInterest(CalloutSubject)
		})
	}
	return &calloutCluster{c: c, ground: nc, groundKP: groundKey, aircraft: aircraft, retiring: retiring, expired: expired,
		issuer: mustPublic(issuer), until: until, log: log}
}

func TestCalloutLetsInRegisteredAircraft(t *testing.T) {
	cc := startCalloutCluster(t)
	for i, url := range cc.c.URLs() {
		t.Run(cc.c.NodeName(i), func(t *testing.T) {
			errs := make(chan error, 8)
			nc, err := dial(url, nats.Nkey(mustPublic(cc.aircraft), cc.aircraft.Sign),
				nats.CustomInboxPrefix(protocol.InboxPrefix("D-AIUA")),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
			if err != nil {
				t.Fatalf("registered aircraft refused: %v", err)
			}
			defer nc.Close()
			// Its own subject reaches ground; another aircraft's is refused.
			// Ground listens on the same node, so the subscription is known
			// there once flushed (interest reaches other nodes later).
			local, err := dial(url, nats.Nkey(mustPublic(cc.groundKP), cc.groundKP.Sign))
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			sub, err := local.SubscribeSync(protocol.InvoiceSubject("D-AIUA", "XX123-2026-11-21"))
			if err != nil {
				t.Fatal(err)
			}
			if err := local.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish(protocol.InvoiceSubject("D-AIUB", "XX123-2026-11-21"), []byte("forged")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish(protocol.InvoiceSubject("D-AIUA", "XX123-2026-11-21"), []byte("own")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if m, err := sub.NextMsg(hangGuard); err != nil || string(m.Data) != "own" {
				t.Fatalf("own invoice subject: %v %v", m, err)
			}
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
					t.Fatalf("async error %v, want a permissions violation", err)
				}
			case <-time.After(hangGuard):
				t.Fatal("publishing as another aircraft raised no permissions violation")
			}
		})
	}
}

func TestCalloutRefuses(t *testing.T) {
	cc := startCalloutCluster(t)
	stranger, _ := nkeys.CreateUser()
	for name, tc := range map[string]struct {
		opt    nats.Option
		reason string // in the callout's log
	}{
		"ErrUnregisteredNKey": {nats.Nkey(mustPublic(stranger), stranger.Sign), "is not registered to an aircraft"},
		"ErrWrongSignature":   {nats.Nkey(mustPublic(cc.aircraft), stranger.Sign), "signature over the nonce does not verify"},
		"ErrNoNKey":           {nats.UserInfo("D-AIUA", "password"), "no nkey"},
		"ErrGraceOver":        {nats.Nkey(mustPublic(cc.expired), cc.expired.Sign), "is not registered to an aircraft"},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := dial(cc.c.URLs()[1], tc.opt, nats.MaxReconnects(0))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Fatalf("err = %v, want an authorization violation", err)
			}
			if !strings.Contains(cc.log.String(), tc.reason) {
				t.Fatalf("callout log does not say %q:\n%s", tc.reason, cc.log.String())
			}
		})
	}
}

func TestStartCalloutRefusesUserKeyAsIssuer(t *testing.T) {
	u, _ := nkeys.CreateUser()
	_, err := StartCallout(CalloutConfig{Conn: &nats.Conn{}, Issuer: u, Identities: func(context.Context) (map[protocol.AircraftID]string, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "not an account nkey") {
		t.Fatalf("err = %v, want the issuer kind named", err)
	}
}

func TestLoadOrCreateNKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.nk")
	kp, created, err := LoadOrCreateNKey(file, nkeys.PrefixByteAccount)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again, created, err := LoadOrCreateNKey(file, nkeys.PrefixByteAccount)
	if err != nil || created || mustPublic(again) != mustPublic(kp) {
		t.Fatalf("load: created %v, err %v, same key %v", created, err, mustPublic(again) == mustPublic(kp))
	}
	if _, _, err := LoadOrCreateNKey(file, nkeys.PrefixByteUser); err == nil || !strings.Contains(err.Error(), "want a") {
		t.Fatalf("wrong kind: err = %v, want a refusal naming the kind", err)
	}
}

func TestCalloutLetsInRetiringNKeyUntilGraceEnds(t *testing.T) {
	cc := startCalloutCluster(t)
	nc, err := dial(cc.c.URL(), nats.Nkey(mustPublic(cc.retiring), cc.retiring.Sign), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("nkey in its grace refused: %v", err)
	}
	nc.Close()
	resp := cc.request(t, cc.serverRequest(t, cc.retiring, nil))
	if resp.Error != "" {
		t.Fatalf("refused: %s", resp.Error)
	}
	uc, err := jwt.DecodeUserClaims(resp.Jwt)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(uc.Expires, 0), cc.until; !got.Equal(want) {
		t.Fatalf("user JWT expires %v, want the grace's end %v", got, want)
	}
}

// serverRequest is an authorization request as a nats-server makes it for a
// client logging in with kp, signed by a fresh server key; edit changes it
// before signing.
func (cc *calloutCluster) serverRequest(t *testing.T, kp nkeys.KeyPair, edit func(*jwt.AuthorizationRequestClaims)) (token string) {
	t.Helper()
	srv, _ := nkeys.CreateServer()
	user, _ := nkeys.CreateUser()
	req := jwt.NewAuthorizationRequestClaims(cc.issuer)
	req.Audience = server.AuthRequestSubject
	req.UserNkey = mustPublic(user)
	req.Server = jwt.ServerID{Name: "n1", ID: mustPublic(srv)}
	req.Expires = time.Now().Add(2 * time.Second).Unix()
	nonce := "bm9uY2Utbm9uY2U"
	sig, _ := kp.Sign([]byte(nonce))
	req.ClientInformation.Nonce = nonce
	req.ConnectOptions.Nkey = mustPublic(kp)
	req.ConnectOptions.SignedNonce = base64.RawURLEncoding.EncodeToString(sig)
	if edit != nil {
		edit(req)
	}
	token, err := req.Encode(srv)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// request sends token to the callout as ground's connection and decodes
// the answer.
func (cc *calloutCluster) request(t *testing.T, token string) *jwt.AuthorizationResponseClaims {
	t.Helper()
	m, err := cc.ground.Request(CalloutSubject, []byte(token), hangGuard)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := jwt.DecodeAuthorizationResponseClaims(string(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestCalloutRefusesRequestsNotFromAServer(t *testing.T) {
	cc := startCalloutCluster(t)
	if resp := cc.request(t, cc.serverRequest(t, cc.aircraft, nil)); resp.Error != "" || resp.Jwt == "" {
		t.Fatalf("a well-formed request is refused: %q", resp.Error)
	}
	other, _ := nkeys.CreateAccount()
	for name, tc := range map[string]struct {
		edit   func(*jwt.AuthorizationRequestClaims)
		reason string
	}{
		"ErrOtherServerID": {func(r *jwt.AuthorizationRequestClaims) { r.Server.ID = "NOTTHESIGNER" }, "not signed by the server"},
		"ErrOtherIssuer":   {func(r *jwt.AuthorizationRequestClaims) { r.Subject = mustPublic(other) }, "not this one"},
		"ErrOtherAudience": {func(r *jwt.AuthorizationRequestClaims) { r.Audience = "elsewhere" }, "audience"},
		"ErrReplayed":      {func(r *jwt.AuthorizationRequestClaims) { r.Expires = time.Now().Add(-time.Hour).Unix() }, "expired"},
		"ErrNoExpiry":      {func(r *jwt.AuthorizationRequestClaims) { r.Expires = 0 }, "no expiry"},
		"ErrBadUserNkey":   {func(r *jwt.AuthorizationRequestClaims) { r.UserNkey = mustPublic(other) }, "user nkey"},
	} {
		t.Run(name, func(t *testing.T) {
			resp := cc.request(t, cc.serverRequest(t, cc.aircraft, tc.edit))
			if resp.Jwt != "" || !strings.Contains(resp.Error, tc.reason) {
				t.Fatalf("answer: error %q, jwt %v; want a refusal saying %q", resp.Error, resp.Jwt != "", tc.reason)
			}
		})
	}
}

func TestCalloutLooksUpAircraftOncePerMaxAge(t *testing.T) {
	var mu sync.Mutex
	lookups := 0
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	var ids Identities
	cc := startCalloutCluster(t, func(c *CalloutConfig) {
		ids = c.Identities
		c.Clock = clock
		c.Identities = func(ctx context.Context) (map[protocol.AircraftID]string, error) {
			mu.Lock()
			lookups++
			mu.Unlock()
			return ids(ctx)
		}
	})
	// A flood of logins with nkeys the client made itself: each signs its
	// nonce correctly, none is registered.
	for range 20 {
		stranger, _ := nkeys.CreateUser()
		if resp := cc.request(t, cc.serverRequest(t, stranger, nil)); !strings.Contains(resp.Error, "not registered") {
			t.Fatalf("stranger: %q, want a refusal", resp.Error)
		}
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return lookups }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	if got := count(); got != 1 {
		t.Fatalf("20 logins at one instant made %d registry lookups, want 1", got)
	}
	// A registered nkey is answered from the last lookup within MaxAge.
	advance(500 * time.Millisecond)
	if resp := cc.request(t, cc.serverRequest(t, cc.aircraft, nil)); resp.Error != "" {
		t.Fatalf("registered aircraft: %q", resp.Error)
	}
	if got := count(); got != 1 {
		t.Fatalf("a known nkey within MaxAge made %d lookups in all, want 1", got)
	}
	// An unknown one, 100 ms after the last lookup, is looked up again
	// (it may have been registered since), once.
	for range 5 {
		stranger, _ := nkeys.CreateUser()
		cc.request(t, cc.serverRequest(t, stranger, nil))
	}
	if got := count(); got != 2 {
		t.Fatalf("unknown nkeys 100 ms after the last lookup made %d lookups in all, want 2", got)
	}
	advance(time.Second)
	if resp := cc.request(t, cc.serverRequest(t, cc.aircraft, nil)); resp.Error != "" {
		t.Fatalf("registered aircraft: %q", resp.Error)
	}
	if got := count(); got != 3 {
		t.Fatalf("a login MaxAge later made %d lookups in all, want 3", got)
	}
}

func TestCalloutGrantIsTheEmbeddedServersPermissions(t *testing.T) {
	at := time.Now().Truncate(time.Second) // requests are dated by the wall clock
	cc := startCalloutCluster(t, func(c *CalloutConfig) { c.Clock = func() time.Time { return at } })
	token := cc.serverRequest(t, cc.aircraft, nil)
	req, err := jwt.DecodeAuthorizationRequestClaims(token)
	if err != nil {
		t.Fatal(err)
	}
	resp := cc.request(t, token)
	if resp.Error != "" {
		t.Fatalf("refused: %s", resp.Error)
	}
	if resp.Issuer != cc.issuer || resp.Subject != req.UserNkey || resp.Audience != req.Server.ID {
		t.Fatalf("response issuer %s subject %s audience %s, want %s %s %s", resp.Issuer, resp.Subject, resp.Audience, cc.issuer, req.UserNkey, req.Server.ID)
	}
	uc, err := jwt.DecodeUserClaims(resp.Jwt)
	if err != nil {
		t.Fatal(err)
	}
	if uc.Issuer != cc.issuer || uc.Subject != req.UserNkey || uc.Audience != "$G" || uc.IssuerAccount != "" {
		t.Fatalf("user JWT issuer %s subject %s audience %s issuer account %q", uc.Issuer, uc.Subject, uc.Audience, uc.IssuerAccount)
	}
	pub, sub := protocol.AircraftPermissions("D-AIUA")
	if got := []string(uc.Pub.Allow); !slices.Equal(got, pub) {
		t.Errorf("publish allow %v, want %v", got, pub)
	}
	if got := []string(uc.Sub.Allow); !slices.Equal(got, sub) {
		t.Errorf("subscribe allow %v, want %v", got, sub)
	}
	if len(uc.Pub.Deny) != 0 || len(uc.Sub.Deny) != 0 || uc.Resp != nil || uc.BearerToken {
		t.Errorf("extra rights: deny %v %v, responses %v, bearer %v", uc.Pub.Deny, uc.Sub.Deny, uc.Resp, uc.BearerToken)
	}
	if got := uc.AllowedConnectionTypes; len(got) != 1 || !got.Contains(jwt.ConnectionTypeStandard) {
		t.Errorf("connection types %v, want only %s", got, jwt.ConnectionTypeStandard)
	}
	// Not measured from its iat: Encode dates that by the wall clock, a
	// second later than the callout's clock now and then.
	if got, want := time.Unix(uc.Expires, 0), at.Add(DefaultCalloutUserTTL); !got.Equal(want) {
		t.Errorf("user JWT expires %v, want %v (the default lifetime)", got, want)
	}
}

// TestCalloutUserTTL: a grant expires UserTTL after the callout's clock.
func TestCalloutUserTTL(t *testing.T) {
	at := time.Now().Truncate(time.Second) // requests are dated by the wall clock
	cc := startCalloutCluster(t, func(c *CalloutConfig) {
		c.Clock = func() time.Time { return at }
		c.UserTTL = 10 * time.Minute
	})
	resp := cc.request(t, cc.serverRequest(t, cc.aircraft, nil))
	if resp.Error != "" {
		t.Fatalf("refused: %s", resp.Error)
	}
	uc, err := jwt.DecodeUserClaims(resp.Jwt)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := time.Unix(uc.Expires, 0), at.Add(10*time.Minute); !got.Equal(want) {
		t.Errorf("user JWT expires %v, want %v", got, want)
	}
}
