namespace CmpWaldurAdapter.Waldur.Events.Stomp;

/// <summary>STOMP 1.2 frame commands.</summary>
public static class StompCommands
{
    public const string Connect = "CONNECT";
    public const string Stomp = "STOMP";
    public const string Connected = "CONNECTED";
    public const string Send = "SEND";
    public const string Subscribe = "SUBSCRIBE";
    public const string Unsubscribe = "UNSUBSCRIBE";
    public const string Ack = "ACK";
    public const string Nack = "NACK";
    public const string Begin = "BEGIN";
    public const string Commit = "COMMIT";
    public const string Abort = "ABORT";
    public const string Disconnect = "DISCONNECT";
    public const string Message = "MESSAGE";
    public const string Receipt = "RECEIPT";
    public const string Error = "ERROR";
}

/// <summary>STOMP 1.2 header names used by this client.</summary>
public static class StompHeaderNames
{
    public const string AcceptVersion = "accept-version";
    public const string Host = "host";
    public const string Login = "login";
    public const string Passcode = "passcode";
    public const string HeartBeat = "heart-beat";
    public const string Version = "version";
    public const string Session = "session";
    public const string Server = "server";
    public const string Destination = "destination";
    public const string Id = "id";
    public const string Ack = "ack";
    public const string Subscription = "subscription";
    public const string MessageId = "message-id";
    public const string Receipt = "receipt";
    public const string ReceiptId = "receipt-id";
    public const string ContentType = "content-type";
    public const string ContentLength = "content-length";
    public const string Message = "message";
    public const string Transaction = "transaction";
}
