# Rampart make targets. Go's own tooling does the building; these wrap the
# checks that need something outside Go.

GO ?= go
REPORT_DIR ?= $(CURDIR)/bench/out/report-check

.PHONY: report-check
# report-check renders an assessment report (issue 8) in Debian's headless
# chromium and keeps the screenshot: $(REPORT_DIR)/report.png. It installs
# chromium with apt-get when missing (CI runs as root on Debian).
report-check:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		(apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium)
	@mkdir -p $(REPORT_DIR)
	ASSESS_REPORT_DIR=$(REPORT_DIR) $(GO) test ./assess/ -run '^TestReport' -count=1 -v
	@test -s $(REPORT_DIR)/report.png && echo "screenshot: $(REPORT_DIR)/report.png"
