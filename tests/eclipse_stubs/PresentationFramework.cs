// Stub of System.Windows.MessageBox (WPF's PresentationFramework assembly, which Eclipse's script
// compiler references): MessageBox.Show(string messageBoxText, string caption) -> MessageBoxResult.
// Test double: the text is kept in MessageBox.Shown for the test harness.
using System.Collections.Generic;

namespace System.Windows
{
    public enum MessageBoxResult { None = 0, OK = 1, Cancel = 2, Yes = 6, No = 7 }

    public static class MessageBox
    {
        public static readonly List<string> Shown = new List<string>();

        public static MessageBoxResult Show(string messageBoxText, string caption)
        {
            Shown.Add(caption + ": " + messageBoxText);
            return MessageBoxResult.OK;
        }
    }
}
