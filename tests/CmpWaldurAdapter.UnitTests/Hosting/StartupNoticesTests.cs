using CmpWaldurAdapter.Events;
using CmpWaldurAdapter.Hosting;
using CmpWaldurAdapter.Waldur;

namespace CmpWaldurAdapter.UnitTests.Hosting;

public sealed class StartupNoticesTests
{
    /// <summary>The service-provider token goes with every Waldur call and as the STOMP passcode: in clear past this machine, it is said.</summary>
    [Theory]
    [InlineData("https://waldur.example.org/", "wss://waldur.example.org/rmqws-stomp", true, "")]
    [InlineData("http://waldur.example.org/", "wss://waldur.example.org/rmqws-stomp", true, "Waldur:BaseUrl")]
    [InlineData("https://waldur.example.org/", "ws://waldur.example.org/rmqws-stomp", true, "Events:WebSocketUrl")]
    [InlineData("http://10.0.0.5:8080/", "ws://10.0.0.5:15674/ws", true, "Waldur:BaseUrl,Events:WebSocketUrl")]
    [InlineData("https://waldur.example.org/", "ws://waldur.example.org/rmqws-stomp", false, "")] // events off: no passcode sent
    [InlineData("http://127.0.0.1:8080/", "ws://localhost:15674/ws", true, "")] // this machine
    public void Settings_sending_the_waldur_token_unencrypted_to_another_machine_are_named(string baseUrl, string webSocketUrl, bool events, string named)
    {
        var sending = StartupNotices.SendingTheTokenInClear(
            new WaldurOptions { BaseUrl = new Uri(baseUrl) },
            new EventsOptions { Enabled = events, WebSocketUrl = new Uri(webSocketUrl) });

        Assert.Equal(named, string.Join(',', sending.Select(s => s.Setting)));
    }
}
