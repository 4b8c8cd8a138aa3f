package sbc

import "testing"

func TestRelayStatus(t *testing.T) {
	tests := []struct{ in, want int }{
		{486, 486}, {603, 603}, {404, 404}, {503, 503}, {488, 488},
		{302, 480}, {380, 480}, {401, 403}, {407, 403}, {700, 502}, {199, 502},
	}
	for _, tt := range tests {
		if got := relayStatus(tt.in); got != tt.want {
			t.Errorf("relayStatus(%d) = %d; want %d", tt.in, got, tt.want)
		}
	}
	if reason(486) != "Busy Here" || reason(499) != "Request Failure" || reason(580) != "Server Failure" {
		t.Error("reason phrases")
	}
}
