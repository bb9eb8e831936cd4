package entraemu

import (
	"net/http"
	"net/url"
	"strings"
)

// cloudInfo is what differs between Entra's clouds in discovery documents and tokens. The emulator takes its
// cloud from the host it is reached as (SetBaseURL): served as login.microsoftonline.us it answers as US
// Government does, as login.chinacloudapi.cn as the China cloud (21Vianet) does; any other host is the public cloud.
type cloudInfo struct {
	instance   string // cloud_instance_name
	sts        string // host of the v1 issuer, https://<sts>/<tenant>/
	graphHost  string // cloud_graph_host_name (Azure AD Graph)
	msgraph    string // msgraph_host
	exchangeAu string // the token exchange audience of federated credentials
}

var (
	publicCloud = cloudInfo{"microsoftonline.com", "sts.windows.net", "graph.windows.net", "graph.microsoft.com", "api://AzureADTokenExchange"}
	usGovCloud  = cloudInfo{"microsoftonline.us", "sts.windows.net", "graph.windows.net", "graph.microsoft.us", "api://AzureADTokenExchangeUSGov"}
	chinaCloud  = cloudInfo{"partner.microsoftonline.cn", "sts.chinacloudapi.cn", "graph.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn", "api://AzureADTokenExchangeChina"}
)

func (e *Emulator) cloud(r *http.Request) cloudInfo {
	u, err := url.Parse(e.baseURL(r))
	if err != nil {
		return publicCloud
	}
	switch strings.ToLower(u.Hostname()) {
	case "login.microsoftonline.us":
		return usGovCloud
	case "login.chinacloudapi.cn", "login.partner.microsoftonline.cn":
		return chinaCloud
	}
	return publicCloud
}

// TokenExchangeAudience is the audience federated tokens carry in the emulator's cloud.
func (e *Emulator) TokenExchangeAudience() string { return e.cloud(nil).exchangeAu }

// Issuer is the tenant's v2 issuer: the issuer of managed identity tokens, which a federated credential names.
func (e *Emulator) Issuer() string { return e.issuerV2(nil) }
